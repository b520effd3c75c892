#include "envd/rpc/rpc_server.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "envd/blocking.h"
#include "envd/echo_service.h"
#include "envd/rpc/envelope.h"
#include "envdtest.pb.h"
#include "process.pb.h"
#include "process/process_service.h"
#include "tests/fake_exchange.h"

using namespace envd;
using envd::testing::FakeExchange;

namespace {

struct Fixture {
  rpc::Registry registry;
  SandboxState state;
  rpc::RpcServer server{registry, rpc::RpcConfig{1024}};
  boost::asio::io_context io;

  Fixture() {
    envd::process::ServiceConfig pcfg;
    pcfg.cgroups = false;
    envd::process::register_service(registry, state, pcfg);
    register_echo_service(registry);
  }

  void run(FakeExchange& ex) {
    boost::asio::co_spawn(io, server.serve(ex), boost::asio::detached);
    io.run();
    io.restart();
  }

  http::RequestHead post(std::string path, std::string content_type, http::Headers extra = {}) {
    http::RequestHead h;
    h.method = "POST";
    h.target = std::move(path);
    h.headers = std::move(extra);
    h.headers.emplace_back("content-type", std::move(content_type));
    return h;
  }
};

// Splits a body of envelopes into (flags, payload) pairs.
std::vector<std::pair<int, std::string>> frames(const std::string& body) {
  rpc::EnvelopeReader r(1 << 20);
  r.feed(body);
  std::vector<std::pair<int, std::string>> out;
  rpc::Envelope e;
  while (r.next(e) == rpc::EnvelopeReader::Result::envelope) out.emplace_back(e.flags, e.payload);
  return out;
}

}  // namespace

TEST_CASE("rpc: wire format detection") {
  using rpc::Protocol;
  CHECK(rpc::detect_wire_format("application/json")->protocol == Protocol::connect_unary);
  CHECK(rpc::detect_wire_format("application/json; charset=utf-8")->codec == rpc::Codec::json);
  CHECK(rpc::detect_wire_format("Application/Proto")->codec == rpc::Codec::proto);
  CHECK(rpc::detect_wire_format("application/connect+json")->protocol == Protocol::connect_stream);
  CHECK(rpc::detect_wire_format("application/grpc")->protocol == Protocol::grpc);
  CHECK(rpc::detect_wire_format("application/grpc+json")->codec == rpc::Codec::json);
  CHECK(rpc::detect_wire_format("application/grpc-web+proto")->protocol == Protocol::grpc_web);
  CHECK_FALSE(rpc::detect_wire_format("text/plain"));
  CHECK_FALSE(rpc::detect_wire_format(""));
  CHECK_FALSE(rpc::detect_wire_format("application/json; charset=latin1"));
}

TEST_CASE("rpc: routing knows services and methods") {
  Fixture f;
  CHECK(f.server.owns("/process.Process/Start"));
  CHECK(f.server.owns("/process.Process/Nope"));
  CHECK_FALSE(f.server.owns("/nope.Service/Start"));
  CHECK_FALSE(f.server.owns("/health"));
}

TEST_CASE("rpc: Connect unary JSON round trip and unimplemented methods") {
  Fixture f;
  FakeExchange ok(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {R"({"text":"hi","number":"3"})"});
  f.run(ok);
  CHECK(ok.status == 200);
  CHECK(ok.body == R"({"text":"hi","number":"3"})");

  FakeExchange list(f.io, f.post("/process.Process/List", "application/json"), {"{}"});
  f.run(list);
  CHECK(list.status == 200);
  CHECK(list.body == "{}");

  // A registered service whose method has no handler yet answers unimplemented.
  rpc::Registry bare;
  bare.add_service(::process::StartRequest::descriptor()->file()->FindServiceByName("Process"));
  rpc::RpcServer bare_server{bare, rpc::RpcConfig{1024}};
  FakeExchange un(f.io, f.post("/process.Process/List", "application/json"), {"{}"});
  boost::asio::co_spawn(f.io, bare_server.serve(un), boost::asio::detached);
  f.io.run();
  f.io.restart();
  CHECK(un.status == 501);
  CHECK(un.body == R"({"code":"unimplemented","message":"process.Process.List is not implemented"})");

  FakeExchange unknown(f.io, f.post("/process.Process/Nope", "application/json"), {"{}"});
  f.run(unknown);
  CHECK(unknown.status == 404);
  CHECK(unknown.body.find("\"unimplemented\"") != std::string::npos);
}

TEST_CASE("rpc: content types, methods and bad requests") {
  Fixture f;
  FakeExchange ct(f.io, f.post("/envdtest.Echo/Echo", "text/plain"), {"{}"});
  f.run(ct);
  CHECK(ct.status == 415);

  FakeExchange stream_ct(f.io, f.post("/envdtest.Echo/Echo", "application/connect+json"), {});
  f.run(stream_ct);
  CHECK(stream_ct.status == 415);

  auto get = f.post("/envdtest.Echo/Echo", "application/json");
  get.method = "GET";
  FakeExchange g(f.io, get);
  f.run(g);
  CHECK(g.status == 405);

  FakeExchange empty(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {});
  f.run(empty);
  CHECK(empty.status == 400);
  CHECK(empty.body.find("zero-length payload") != std::string::npos);

  FakeExchange big(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {std::string(2000, ' ')});
  f.run(big);
  CHECK(big.status == 429);

  FakeExchange bad_timeout(
      f.io, f.post("/envdtest.Echo/Echo", "application/json", {{"connect-timeout-ms", "12345678901"}}), {"{}"});
  f.run(bad_timeout);
  CHECK(bad_timeout.status == 400);

  FakeExchange br(f.io, f.post("/envdtest.Echo/Echo", "application/json", {{"content-encoding", "br"}}), {"{}"});
  f.run(br);
  CHECK(br.status == 501);
}

TEST_CASE("rpc: Connect streaming sends messages then an end frame") {
  Fixture f;
  auto req = rpc::encode_envelope(0, R"({"count":3})");
  FakeExchange ex(f.io, f.post("/envdtest.Echo/Ticks", "application/connect+json"), {req.substr(0, 3), req.substr(3)});
  f.run(ex);
  CHECK(ex.status == 200);
  auto fr = frames(ex.body);
  REQUIRE(fr.size() == 4);
  CHECK(fr[0].second.find("\"payload\"") == std::string::npos);
  CHECK(fr[1].second.find("\"seq\":1") != std::string::npos);
  CHECK(fr[3].first == rpc::kFlagConnectEndStream);
  CHECK(fr[3].second == "{}");
}

TEST_CASE("rpc: stream errors go in the end frame with HTTP 200") {
  Fixture f;
  FakeExchange ex(f.io, f.post("/envdtest.Echo/Ticks", "application/connect+json"),
                  {rpc::encode_envelope(0, R"({"count":1,"failCode":"not_found"})")});
  f.run(ex);
  CHECK(ex.status == 200);
  auto fr = frames(ex.body);
  REQUIRE(fr.size() == 2);
  CHECK(fr[1].second == R"({"error":{"code":"not_found","message":"failed after 1 messages"}})");

  FakeExchange truncated(f.io, f.post("/envdtest.Echo/Ticks", "application/connect+json"),
                         {rpc::encode_envelope(0, R"({"count":1})").substr(0, 8)});
  f.run(truncated);
  auto tf = frames(truncated.body);
  REQUIRE(tf.size() == 1);
  CHECK(tf[0].second.find("invalid_argument") != std::string::npos);
}

TEST_CASE("rpc: gRPC and gRPC-Web carry status in trailers") {
  Fixture f;
  FakeExchange g(f.io, f.post("/envdtest.Echo/Fail", "application/grpc"));
  f.run(g);
  CHECK(g.status == 200);
  CHECK(http::find_header(g.trailers, "grpc-status") == "3");  // empty FailRequest: unknown code name

  FakeExchange w(f.io, f.post("/envdtest.Echo/Echo", "application/grpc-web+json"),
                 {rpc::encode_envelope(0, R"({"text":"w"})")});
  f.run(w);
  auto fr = frames(w.body);
  REQUIRE(fr.size() == 2);
  CHECK(fr[0].second == R"({"text":"w"})");
  CHECK(fr[1].first == rpc::kFlagGrpcWebTrailers);
  CHECK(fr[1].second == "grpc-status: 0\r\n");

  FakeExchange un(f.io, f.post("/process.Process/Nope", "application/grpc"));
  f.run(un);
  CHECK(http::find_header(un.trailers, "grpc-status") == "12");
}

TEST_CASE("rpc: client streaming counts messages; gzip request messages are inflated") {
  Fixture f;
  std::string body = rpc::encode_envelope(0, R"({"payload":"YWJj"})") + rpc::encode_envelope(0, "{}") +
                     rpc::encode_envelope(rpc::kFlagCompressed, rpc::gzip_compress(R"({"payload":"YQ=="})"));
  FakeExchange ex(f.io,
                  f.post("/envdtest.Echo/Collect", "application/connect+json", {{"connect-content-encoding", "gzip"}}),
                  {body});
  f.run(ex);
  auto fr = frames(ex.body);
  REQUIRE(fr.size() == 2);
  CHECK(fr[0].second == R"({"count":"3","bytes":"4"})");
  CHECK(fr[1].second == "{}");
}

TEST_CASE("rpc: a deadline ends the call with deadline_exceeded") {
  Fixture f;
  FakeExchange ex(f.io, f.post("/envdtest.Echo/Sleep", "application/json", {{"connect-timeout-ms", "20"}}),
                  {R"({"ms":5000})"});
  auto start = std::chrono::steady_clock::now();
  f.run(ex);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(4));
  CHECK(ex.status == 504);
  CHECK(ex.body == R"({"code":"deadline_exceeded","message":"context deadline exceeded"})");
}

TEST_CASE("rpc: the authenticator refuses a call in the shape of its protocol") {
  Fixture f;
  f.server.set_authenticator([](const http::RequestHead& req, rpc::CallContext& ctx) -> rpc::Status {
    if (req.header("authorization")) return rpc::error(rpc::Code::unauthenticated, "invalid username: 'x'");
    ctx.user.name = "root";
    return {};
  });
  FakeExchange unary(f.io, f.post("/envdtest.Echo/Echo", "application/json", {{"authorization", "Basic eDo="}}),
                     {"{}"});
  f.run(unary);
  CHECK(unary.status == 401);
  CHECK(unary.body == R"({"code":"unauthenticated","message":"invalid username: 'x'"})");

  FakeExchange stream(f.io,
                      f.post("/envdtest.Echo/Ticks", "application/connect+json", {{"authorization", "Basic eDo="}}),
                      {rpc::encode_envelope(0, "{}")});
  f.run(stream);
  CHECK(stream.status == 200);
  auto fr = frames(stream.body);
  REQUIRE(fr.size() == 1);
  CHECK(fr[0].second.find("unauthenticated") != std::string::npos);

  FakeExchange ok(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {"{}"});
  f.run(ok);
  CHECK(ok.status == 200);
}

TEST_CASE("rpc: shutdown ends running calls with its status and refuses new ones") {
  Fixture f;
  FakeExchange stream(f.io, f.post("/envdtest.Echo/Ticks", "application/connect+json"),
                      {rpc::encode_envelope(0, R"({"count":1000,"intervalMs":1000})")});
  FakeExchange grpc(f.io, f.post("/envdtest.Echo/Sleep", "application/grpc"),
                    {rpc::encode_envelope(0, std::string("\x08\xe8\x07", 3))});  // ms: 1000
  boost::asio::co_spawn(f.io, f.server.serve(stream), boost::asio::detached);
  boost::asio::co_spawn(f.io, f.server.serve(grpc), boost::asio::detached);
  while (f.server.active_calls() < 2) f.io.run_one();
  f.server.shutdown(rpc::error(rpc::Code::unavailable, "envd is shutting down"));
  CHECK(f.server.shutting_down());
  f.io.run();
  f.io.restart();
  CHECK(f.server.active_calls() == 0);
  auto fr = frames(stream.body);
  REQUIRE_FALSE(fr.empty());
  CHECK(fr.back().first == rpc::kFlagConnectEndStream);
  CHECK(fr.back().second == R"({"error":{"code":"unavailable","message":"envd is shutting down"}})");
  CHECK(http::find_header(grpc.trailers, "grpc-status") == "14");
  CHECK(http::find_header(grpc.trailers, "grpc-message") == "envd is shutting down");

  FakeExchange late(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {"{}"});
  f.run(late);
  CHECK(late.status == 503);
  CHECK(late.body == R"({"code":"unavailable","message":"envd is shutting down"})");
}

TEST_CASE("rpc: large responses are encoded on the blocking pool, small ones on the loop") {
  Fixture f;
  rpc::RpcConfig cfg{1 << 20};
  cfg.off_loop_encode_bytes = 64;
  rpc::RpcServer server{f.registry, cfg};
  auto run = [&](FakeExchange& ex) {
    boost::asio::co_spawn(f.io, server.serve(ex), boost::asio::detached);
    f.io.run();
    f.io.restart();
  };
  auto jobs = [] { return default_blocking_pool().stats().jobs_run; };

  // Small: encoded inline.
  auto before = jobs();
  FakeExchange small(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {R"({"text":"hi"})"});
  run(small);
  CHECK(small.status == 200);
  CHECK(small.body == R"({"text":"hi"})");
  CHECK(jobs() == before);

  // Large unary JSON: one pool job, same bytes as an inline encoding would give.
  std::string text(1000, 'a');
  FakeExchange large(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {"{\"text\":\"" + text + "\"}"});
  run(large);
  CHECK(large.status == 200);
  CHECK(large.body == "{\"text\":\"" + text + "\"}");
  CHECK(jobs() == before + 1);

  // Large unary gzipped: encoding and compression both off the loop.
  FakeExchange gz(f.io, f.post("/envdtest.Echo/Echo", "application/json", {{"accept-encoding", "gzip"}}),
                  {"{\"text\":\"" + text + "\"}"});
  run(gz);
  CHECK(gz.status == 200);
  CHECK(gz.header("content-encoding") == "gzip");
  std::string inflated;
  REQUIRE(rpc::gzip_decompress(gz.body, 1 << 20, inflated).ok());
  CHECK(inflated == "{\"text\":\"" + text + "\"}");
  CHECK(jobs() == before + 3);

  // Streamed, gzipped frames: each large message is one job; the frames decode.
  FakeExchange ticks(f.io,
                     f.post("/envdtest.Echo/Ticks", "application/connect+proto", {{"connect-accept-encoding", "gzip"}}),
                     {rpc::encode_envelope(0, [] {
                       envdtest::TicksRequest r;
                       r.set_count(3);
                       r.set_payload_size(500);
                       return r.SerializeAsString();
                     }())});
  run(ticks);
  auto fr = frames(ticks.body);
  REQUIRE(fr.size() == 4);  // 3 ticks + end of stream
  for (int i = 0; i < 3; ++i) {
    CHECK(fr[i].first == rpc::kFlagCompressed);
    std::string raw;
    REQUIRE(rpc::gzip_decompress(fr[i].second, 1 << 20, raw).ok());
    envdtest::Tick t;
    REQUIRE(t.ParseFromString(raw));
    CHECK(t.seq() == static_cast<std::uint32_t>(i));
    CHECK(t.payload().size() == 500);
  }
  CHECK(jobs() == before + 6);
}
