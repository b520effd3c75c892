#include "envd/rpc/stream_loop.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "process.pb.h"

using namespace envd;
namespace pb = ::process;

namespace {

// Records what the loop sends; refuses after `accept` messages (the client went away).
struct RecordingSink : rpc::MessageSink {
  std::vector<std::string> sent;  // "data:<stdout>", "keepalive", "end:<code>"
  std::size_t accept = SIZE_MAX;
  boost::asio::awaitable<bool> send(const google::protobuf::Message& m) override {
    if (sent.size() >= accept) co_return false;
    const auto& r = static_cast<const pb::StartResponse&>(m);
    if (r.event().has_data()) sent.push_back("data:" + r.event().data().stdout());
    if (r.event().has_keepalive()) sent.push_back("keepalive");
    if (r.event().has_end()) sent.push_back("end:" + std::to_string(r.event().end().exit_code()));
    co_return true;
  }
};

// A scripted source: hands out `chunks`, then idles until `finish` is set, then ends with `end`.
struct ScriptedSource {
  std::vector<std::string> chunks;
  std::size_t next = 0;
  bool finish = false;
  std::optional<rpc::Status> fail;  // end without a last message
  int idles = 0;
  std::function<void()> on_idle;

  boost::asio::awaitable<rpc::Pull> pull(pb::StartResponse& msg) {
    if (fail) co_return rpc::Pull::end(*fail);
    if (next < chunks.size()) {
      msg.mutable_event()->mutable_data()->set_stdout(chunks[next++]);
      co_return rpc::Pull::message();
    }
    if (finish) {
      msg.mutable_event()->mutable_end()->set_exit_code(3);
      co_return rpc::Pull::last(rpc::error(rpc::Code::deadline_exceeded, "late"));
    }
    ++idles;
    if (on_idle) on_idle();
    co_return rpc::Pull::idle();
  }
  void keepalive(pb::StartResponse& msg) { msg.mutable_event()->mutable_keepalive(); }
};

struct Run {
  boost::asio::io_context io;
  Event ready{io.get_executor()};
  RecordingSink sink;
  rpc::Writer<pb::StartResponse> out{sink};
  std::optional<rpc::Status> result;

  void go(ScriptedSource& src, std::chrono::steady_clock::duration keepalive) {
    boost::asio::co_spawn(
        io,
        [&]() -> boost::asio::awaitable<void> {
          rpc::KeepaliveTimer ka(io.get_executor(), keepalive);
          result = co_await rpc::run_stream(out, src, ready, ka);
        },
        boost::asio::detached);
    io.run();
  }
};

}  // namespace

TEST_CASE("run_stream sends every message in order, then the last one, and ends with its status") {
  Run r;
  ScriptedSource src;
  src.chunks = {"a", "b", "c"};
  src.finish = true;
  r.go(src, std::chrono::hours(1));
  REQUIRE(r.result);
  CHECK(r.result->code == rpc::Code::deadline_exceeded);
  CHECK(r.sink.sent == std::vector<std::string>{"data:a", "data:b", "data:c", "end:3"});
}

TEST_CASE("run_stream sleeps on the source's event while idle and wakes when it is set") {
  Run r;
  ScriptedSource src;
  src.chunks = {"a"};
  // The first idle schedules new data and the end; the loop must sleep, then pull them.
  src.on_idle = [&] {
    if (src.idles == 1) {
      boost::asio::post(r.io, [&] {
        src.chunks.push_back("b");
        src.finish = true;
        r.ready.set();
      });
    }
  };
  r.go(src, std::chrono::hours(1));
  REQUIRE(r.result);
  CHECK(r.sink.sent == std::vector<std::string>{"data:a", "data:b", "end:3"});
  CHECK(src.idles == 1);
}

TEST_CASE("run_stream sends keepalives in quiet spells, from the source's keepalive message") {
  Run r;
  ScriptedSource src;
  src.chunks = {"a"};
  int keepalives_seen = 0;
  src.on_idle = [&] {
    keepalives_seen = 0;
    for (const auto& s : r.sink.sent) keepalives_seen += s == "keepalive";
    if (keepalives_seen == 2) src.finish = true;
  };
  r.go(src, std::chrono::milliseconds(1));
  REQUIRE(r.result);
  CHECK(r.sink.sent == std::vector<std::string>{"data:a", "keepalive", "keepalive", "end:3"});
}

TEST_CASE("run_stream ends with canceled when the client goes, and with the source's status on end") {
  SUBCASE("client gone") {
    Run r;
    ScriptedSource src;
    src.chunks = {"a", "b", "c"};
    r.sink.accept = 1;
    r.go(src, std::chrono::hours(1));
    REQUIRE(r.result);
    CHECK(r.result->code == rpc::Code::canceled);
    CHECK(src.next == 2);  // pulled "b", could not send it, stopped
  }
  SUBCASE("source fails") {
    Run r;
    ScriptedSource src;
    src.fail = rpc::error(rpc::Code::data_loss, "events were lost");
    r.go(src, std::chrono::hours(1));
    REQUIRE(r.result);
    CHECK(r.result->code == rpc::Code::data_loss);
    CHECK(r.sink.sent.empty());
  }
}
