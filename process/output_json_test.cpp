#include "process/output_json.h"

#include <doctest/doctest.h>
#include <google/protobuf/unknown_field_set.h>
#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>

#include "process.pb.h"

namespace {

namespace pb = ::process;

// No fields this build does not know (a newer peer's message): those are left to the converter.
bool no_unknown(const google::protobuf::Message& m) { return m.GetReflection()->GetUnknownFields(m).empty(); }

std::string converter(const google::protobuf::Message& m) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  REQUIRE(google::protobuf::util::MessageToJsonString(m, &out, opts).ok());
  return out;
}

std::string random_bytes(std::mt19937_64& rng, std::size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}

// Every ProcessEvent variant the handlers send (and a few they do not), in message `Resp`.
template <class Resp>
std::vector<Resp> variants(std::mt19937_64& rng) {
  std::vector<Resp> v;
  auto add = [&v](auto fill) {
    Resp r;
    fill(r);
    v.push_back(r);
  };
  add([](Resp&) {});
  add([](Resp& r) { r.mutable_event(); });
  add([](Resp& r) { r.mutable_event()->mutable_start()->set_pid(0); });
  add([](Resp& r) { r.mutable_event()->mutable_start()->set_pid(4294967295u); });
  add([](Resp& r) { r.mutable_event()->mutable_keepalive(); });
  add([](Resp& r) { r.mutable_event()->mutable_data(); });
  add([](Resp& r) { r.mutable_event()->mutable_data()->set_offset(7); });
  add([](Resp& r) {
    auto* e = r.mutable_event()->mutable_end();
    e->set_exit_code(-1);
    e->set_status("signal: killed");
  });
  add([](Resp& r) {
    auto* e = r.mutable_event()->mutable_end();
    e->set_exited(true);
    e->set_status("exit status 0");
    e->set_error("");
    e->mutable_cause()->set_kind(pb::ExitCause::Kind(1));
  });
  add([](Resp& r) {
    auto* l = r.mutable_event()->mutable_output_lost();
    l->set_stdout(1);
    l->set_pty(std::numeric_limits<std::uint64_t>::max());
  });
  // Data events: each stream, with and without an offset, with payloads of edge and random sizes.
  std::vector<std::size_t> sizes{0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 64, 1000, 65536, 131072, 200000};
  std::uniform_int_distribution<std::size_t> any_size(0, 200000);
  for (int i = 0; i < 40; ++i) sizes.push_back(any_size(rng));
  std::uniform_int_distribution<int> stream(0, 2);
  for (std::size_t n : sizes) {
    for (int offset_kind = 0; offset_kind < 3; ++offset_kind) {
      Resp r;
      auto* d = r.mutable_event()->mutable_data();
      std::string bytes = random_bytes(rng, n);
      switch (stream(rng)) {
        case 0: d->set_stdout(bytes); break;
        case 1: d->set_stderr(bytes); break;
        default: d->set_pty(bytes); break;
      }
      if (offset_kind == 1) d->set_offset(0);
      if (offset_kind == 2) d->set_offset(rng());
      v.push_back(r);
    }
  }
  for (int s = 0; s < 3; ++s) {
    Resp r;
    auto* d = r.mutable_event()->mutable_data();
    if (s == 0) d->set_stdout("hi");
    if (s == 1) d->set_stderr("hi");
    if (s == 2) d->set_pty("hi");
    d->set_offset(std::numeric_limits<std::uint64_t>::max());
    v.push_back(r);
  }
  // Unknown fields at each level (a newer peer's message): left to the converter.
  for (int level = 0; level < 3; ++level) {
    Resp r;
    r.mutable_event()->mutable_data()->set_stdout("abc");
    std::string extra = std::string("\xa8\x1f\x05", 3);  // field 501, varint 5
    if (level == 0) REQUIRE(r.MergeFromString(extra));
    if (level == 1) REQUIRE(r.mutable_event()->MergeFromString(extra));
    if (level == 2) REQUIRE(r.mutable_event()->mutable_data()->MergeFromString(extra));
    v.push_back(r);
  }
  return v;
}

template <class Resp>
void check_all(bool (*direct)(const google::protobuf::Message&, std::string&)) {
  std::mt19937_64 rng(12345);
  int direct_count = 0;
  for (const Resp& r : variants<Resp>(rng)) {
    const std::string want = converter(r);
    // The direct encoder itself: exact when it takes the message, untouched output when not.
    std::string mine = "x";
    if (direct(r, mine)) {
      ++direct_count;
      REQUIRE(mine == "x" + want);
      const auto& ev = r.event();
      CHECK(ev.event_case() == pb::ProcessEvent::kData);
      CHECK(ev.data().output_case() != pb::ProcessEvent::DataEvent::OUTPUT_NOT_SET);
    } else {
      CHECK(mine == "x");
      const bool hot = r.has_event() && r.event().has_data() &&
                       r.event().data().output_case() != pb::ProcessEvent::DataEvent::OUTPUT_NOT_SET && no_unknown(r) &&
                       no_unknown(r.event()) && no_unknown(r.event().data());
      CHECK_FALSE(hot);  // every data event with bytes goes the direct way
    }
  }
  CHECK(direct_count >= 3 * 55);
}

}  // namespace

TEST_CASE("output JSON: StartResponse encoded directly is the converter's text, for every variant") {
  check_all<pb::StartResponse>(&envd::process::encode_start_response_json);
}

TEST_CASE("output JSON: ConnectResponse encoded directly is the converter's text, for every variant") {
  check_all<pb::ConnectResponse>(&envd::process::encode_connect_response_json);
}
