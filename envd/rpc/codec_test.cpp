#include "envd/rpc/codec.h"

#include <doctest/doctest.h>
#include <google/protobuf/util/json_util.h>

#include "envd/rpc/service.h"
#include "envdtest.pb.h"
#include "filesystem.pb.h"
#include "process.pb.h"

using namespace envd::rpc;

TEST_CASE("codec: JSON omits defaults, writes int64 as string, bytes as base64, enums as names") {
  process::ProcessEvent ev;
  ev.mutable_end()->set_exited(true);
  ev.mutable_end()->set_status("exit status 0");
  CHECK(encode_message(Codec::json, ev) == R"({"end":{"exited":true,"status":"exit status 0"}})");

  envdtest::EchoResponse r;
  r.set_number(13);
  r.set_payload("hi");
  CHECK(encode_message(Codec::json, r) == R"({"payload":"aGk=","number":"13"})");

  filesystem::EntryInfo e;
  e.set_type(filesystem::FILE_TYPE_DIRECTORY);
  CHECK(encode_message(Codec::json, e) == R"({"type":"FILE_TYPE_DIRECTORY"})");
}

TEST_CASE("codec: JSON end event with exit code -1 (sint32)") {
  process::ProcessEvent ev;
  ev.mutable_end()->set_exit_code(-1);
  ev.mutable_end()->set_status("signal: killed");
  ev.mutable_end()->set_error("signal: killed");
  CHECK(encode_message(Codec::json, ev) ==
        R"({"end":{"exitCode":-1,"status":"signal: killed","error":"signal: killed"}})");
}

TEST_CASE("codec: JSON decoding accepts camelCase and proto names, ignores unknown fields") {
  process::StartRequest req;
  auto st = decode_message(Codec::json, R"({"process":{"cmd":"ls","args":["-l"]},"unknownField":1,"stdin":true})", req);
  REQUIRE(st.ok());
  CHECK(req.process().cmd() == "ls");
  CHECK(req.stdin());

  filesystem::WatchDirRequest w;
  REQUIRE(decode_message(Codec::json, R"({"include_entry":true,"allowNetworkMounts":true})", w).ok());
  CHECK(w.include_entry());
  CHECK(w.allow_network_mounts());

  envdtest::EchoRequest e;
  REQUIRE(decode_message(Codec::json, R"({"number":"42"})", e).ok());
  CHECK(e.number() == 42);
  REQUIRE(decode_message(Codec::json, R"({"number":7})", e).ok());
  CHECK(e.number() == 7);
}

TEST_CASE("codec: bad input is invalid_argument") {
  envdtest::EchoRequest e;
  auto empty = decode_message(Codec::json, "", e);
  CHECK(empty.code == Code::invalid_argument);
  CHECK(empty.message.find("zero-length payload") != std::string::npos);
  CHECK(decode_message(Codec::json, "{not json", e).code == Code::invalid_argument);
  CHECK(decode_message(Codec::proto, "\xff\xff\xff", e).code == Code::invalid_argument);
  // An empty binary message is valid: every field at its default.
  CHECK(decode_message(Codec::proto, "", e).ok());
}

TEST_CASE("codec: binary round trip") {
  envdtest::EchoRequest in;
  in.set_text("t");
  in.set_payload(std::string("\0\1\2", 3));
  in.set_number(-5);
  envdtest::EchoRequest out;
  REQUIRE(decode_message(Codec::proto, encode_message(Codec::proto, in), out).ok());
  CHECK(out.payload() == in.payload());
  CHECK(out.number() == -5);
}

TEST_CASE("codec: gzip round trip and limits") {
  std::string data(100000, 'a');
  std::string z = gzip_compress(data);
  CHECK(z.size() < data.size());
  std::string out;
  REQUIRE(gzip_decompress(z, 1 << 20, out).ok());
  CHECK(out == data);
  CHECK(gzip_decompress(z, 1000, out).code == Code::resource_exhausted);
  CHECK(gzip_decompress("not gzip", 1000, out).code == Code::invalid_argument);
  CHECK(gzip_decompress(z.substr(0, z.size() / 2), 1 << 20, out).code == Code::invalid_argument);
}

TEST_CASE("codec: a JSON scalar for a repeated field is invalid_argument, as protojson (issue 7)") {
  process::StartRequest req;
  auto st = decode_message(Codec::json, R"({"process":{"cmd":"/bin/echo","args":"hi"}})", req);
  CHECK(st.code == Code::invalid_argument);
  CHECK(st.message ==
        "unmarshal into process.StartRequest: (process.ProcessConfig.args): a repeated field needs a "
        "JSON array");
  // Arrays, null, and unknown members that look alike stay fine.
  CHECK(decode_message(Codec::json, R"({"process":{"cmd":"x","args":["a","b"]}})", req).ok());
  CHECK(req.process().args_size() == 2);
  CHECK(decode_message(Codec::json, R"({"process":{"cmd":"x","args":null}})", req).ok());
  CHECK(decode_message(Codec::json, R"({"unknown":{"args":"x"},"process":{"cmd":"x","envs":{"A":"1"}}})", req).ok());
}

TEST_CASE("codec: `{}` and empty messages take a short cut with the library's result") {
  // Encoding: nothing set → `{}`, as the printer writes; a proto3 optional set to its default,
  // an empty sub-message or an unknown field are not "nothing".
  process::ListResponse empty;
  std::string lib;
  REQUIRE(google::protobuf::util::MessageToJsonString(empty, &lib).ok());
  CHECK(lib == "{}");
  CHECK(encode_message(Codec::json, empty) == lib);
  process::StartRequest opt;
  opt.set_stdin(false);
  CHECK(encode_message(Codec::json, opt) == R"({"stdin":false})");
  process::ProcessEvent sub;
  sub.mutable_keepalive();
  CHECK(encode_message(Codec::json, sub) == R"({"keepalive":{}})");

  // Decoding: `{}` with whitespace clears the message; anything else goes to the parser.
  for (const char* body : {"{}", " {}", "{ }", "\n{\t}\r\n"}) {
    process::StartRequest req;
    req.set_stdin(true);
    CHECK(decode_message(Codec::json, body, req).ok());
    CHECK(req.ByteSizeLong() == 0);
  }
  process::ListRequest req;
  CHECK_FALSE(decode_message(Codec::json, "{} x", req).ok());
  CHECK_FALSE(decode_message(Codec::json, "{", req).ok());
  CHECK_FALSE(decode_message(Codec::json, "[]", req).ok());
  CHECK(decode_message(Codec::json, R"({"x":1})", req).ok());
}

namespace {
// A stand-in hot-path encoder: takes EchoResponse messages with text "fast", leaves the rest.
bool fake_echo_encoder(const google::protobuf::Message& msg, std::string& out) {
  const auto& r = static_cast<const envdtest::EchoResponse&>(msg);
  if (r.text() != "fast") return false;
  out += R"({"text":"fast"})";
  return true;
}
}  // namespace

TEST_CASE("codec: a registered JSON encoder writes the messages it takes, the converter the rest") {
  envdtest::EchoResponse fast, slow;
  fast.set_text("fast");
  slow.set_text("slow");
  slow.set_number(7);
  const std::string slow_text = encode_message(Codec::json, slow);
  CHECK(slow_text == R"({"text":"slow","number":"7"})");
  register_json_encoder("envdtest.EchoResponse", &fake_echo_encoder);
  std::string got = "12345";  // appended after the bytes an envelope header will take
  encode_message_to(Codec::json, fast, got);
  CHECK(got == R"(12345{"text":"fast"})");
  got = "12345";
  encode_message_to(Codec::json, slow, got);
  CHECK(got == "12345" + slow_text);
  CHECK(encode_message(Codec::json, slow) == slow_text);
  register_json_encoder("envdtest.EchoResponse", nullptr);  // unregistered again: the converter
  CHECK(encode_message(Codec::json, fast) == R"({"text":"fast"})");
}

TEST_CASE("codec: binary messages encoded after reserved bytes are the plain serialisation") {
  process::StartResponse r;
  r.mutable_event()->mutable_data()->set_stdout(std::string(70000, 'x'));
  envdtest::EchoResponse e;
  e.set_text("t");
  e.set_number(-1);
  for (const google::protobuf::Message* m :
       {static_cast<const google::protobuf::Message*>(&r), static_cast<const google::protobuf::Message*>(&e)}) {
    std::string got = "12345";
    encode_message_to(Codec::proto, *m, got);
    CHECK(got.substr(0, 5) == "12345");
    CHECK(got.substr(5) == m->SerializeAsString());
    CHECK(encode_message(Codec::proto, *m) == m->SerializeAsString());
  }
}
