#include "envd/rpc/rpc_server.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include "envd/base64.h"
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

  // Fail has side effects: no GET (Echo, NO_SIDE_EFFECTS, takes one).
  auto get = f.post("/envdtest.Echo/Fail", "application/json");
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
  // An error before any message is a trailers-only response: the status is in the one head.
  FakeExchange g(f.io, f.post("/envdtest.Echo/Fail", "application/grpc"), {rpc::encode_envelope(0, "")});
  f.run(g);
  CHECK(g.status == 200);
  CHECK(g.header("grpc-status") == "3");  // empty FailRequest: unknown code name
  CHECK(g.header("content-type") == "application/grpc");
  CHECK(g.body.empty());
  CHECK(g.trailers.empty());
  // No request message at all: connect-go's "unary request has zero messages" (unimplemented).
  FakeExchange none(f.io, f.post("/envdtest.Echo/Fail", "application/grpc"));
  f.run(none);
  CHECK(none.header("grpc-status") == "12");

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
  CHECK(un.header("grpc-status") == "12");

  // After a message, the status comes in trailers.
  FakeExchange late(f.io, f.post("/envdtest.Echo/Ticks", "application/grpc+json"),
                    {rpc::encode_envelope(0, R"({"count":1,"failCode":"not_found"})")});
  f.run(late);
  CHECK_FALSE(late.header("grpc-status"));
  CHECK(frames(late.body).size() == 1);
  CHECK(http::find_header(late.trailers, "grpc-status") == "5");
  CHECK(http::find_header(late.trailers, "grpc-message") == "failed after 1 messages");
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
                  {R"({"ms":60000})"});
  auto start = std::chrono::steady_clock::now();
  f.run(ex);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));  // vs the 60 s Sleep
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
  CHECK(grpc.header("grpc-status") == "14");  // trailers-only: nothing was sent before
  CHECK(grpc.header("grpc-message") == "envd is shutting down");

  FakeExchange late(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {"{}"});
  f.run(late);
  CHECK(late.status == 503);
  CHECK(late.body == R"({"code":"unavailable","message":"envd is shutting down"})");
}

TEST_CASE("rpc: a handler that throws operation_aborted uncancelled ends as Connect internal, not a bare HTTP 500") {
  // The escape of issue 7, item 6: Event::wait() threw operation_aborted, run_handler passed it
  // on as a cancellation, and serve() rethrew it to the transport (500 "internal error: no
  // response"). Every exception now ends the call in its protocol's error shape.
  Fixture f;
  f.registry.unary<envdtest::EchoRequest, envdtest::EchoResponse>(
      "envdtest.Echo", "Echo",
      [](rpc::CallContext&, const envdtest::EchoRequest&, envdtest::EchoResponse&) -> asio::awaitable<rpc::Status> {
        throw boost::system::system_error(boost::asio::error::operation_aborted);
        co_return rpc::Status{};
      });
  FakeExchange ex(f.io, f.post("/envdtest.Echo/Echo", "application/json"), {R"({"text":"x"})"});
  f.run(ex);
  CHECK(ex.status == 500);  // Connect's HTTP status for `internal`, with the Connect error body
  CHECK(ex.body.find(R"("code":"internal")") != std::string::npos);
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

TEST_CASE("rpc: bidi streaming answers each message in turn; an error ends the stream") {
  Fixture f;
  FakeExchange ex(f.io, f.post("/envdtest.Echo/Chat", "application/connect+json"),
                  {rpc::encode_envelope(0, R"({"text":"a"})"), rpc::encode_envelope(0, R"({"text":"b"})")});
  f.run(ex);
  auto fr = frames(ex.body);
  REQUIRE(fr.size() == 3);
  CHECK(fr[0].second == R"({"text":"a"})");
  CHECK(fr[1].second == R"({"text":"b"})");
  CHECK(fr[2] == std::pair<int, std::string>{rpc::kFlagConnectEndStream, "{}"});

  FakeExchange g(f.io, f.post("/envdtest.Echo/Chat", "application/grpc+json"),
                 {rpc::encode_envelope(0, R"({"text":"a"})"), rpc::encode_envelope(0, R"({"text":"fail"})")});
  f.run(g);
  CHECK(frames(g.body).size() == 1);
  CHECK(http::find_header(g.trailers, "grpc-status") == "10");

  // A bidi method is a streaming method: Connect unary content types are refused.
  FakeExchange unary(f.io, f.post("/envdtest.Echo/Chat", "application/json"), {"{}"});
  f.run(unary);
  CHECK(unary.status == 415);
}

TEST_CASE("rpc: Connect GET calls a side-effect-free method with the message in the query") {
  Fixture f;
  auto get = [](std::string target) {
    http::RequestHead h;
    h.method = "GET";
    h.target = std::move(target);
    return h;
  };
  FakeExchange json(f.io, get("/envdtest.Echo/Echo?connect=v1&encoding=json&message=%7B%22text%22%3A%22hi%22%7D"));
  f.run(json);
  CHECK(json.status == 200);
  CHECK(json.header("content-type") == "application/json");
  CHECK(json.body == R"({"text":"hi"})");

  // EchoRequest{text: "hi"} in binary, URL-safe base64 without padding.
  FakeExchange proto(f.io, get("/envdtest.Echo/Echo?encoding=proto&base64=1&message=CgJoaQ"));
  f.run(proto);
  CHECK(proto.status == 200);
  CHECK(proto.header("content-type") == "application/proto");
  CHECK(proto.body == std::string("\x0a\x02hi", 4));

  FakeExchange no_message(f.io, get("/envdtest.Echo/Echo?encoding=json"));
  f.run(no_message);
  CHECK(no_message.status == 400);
  CHECK(no_message.body.find("invalid_argument") != std::string::npos);

  // Parameters are decoded as Go's r.URL.Query(): a pair with a bad escape is dropped (here the
  // message: missing), '+' is a space.
  FakeExchange bad_escape(f.io, get("/envdtest.Echo/Echo?encoding=json&message=%7B%zz%7D"));
  f.run(bad_escape);
  CHECK(bad_escape.status == 400);
  CHECK(bad_escape.body.find("missing \\\"message\\\"") != std::string::npos);
  FakeExchange plus(f.io, get("/envdtest.Echo/Echo?encoding=json&message=%7B%22text%22:%22a+b%22%7D"));
  f.run(plus);
  CHECK(plus.status == 200);
  CHECK(plus.body == R"({"text":"a b"})");

  FakeExchange no_encoding(f.io, get("/envdtest.Echo/Echo?message=%7B%7D"));
  f.run(no_encoding);
  CHECK(no_encoding.status == 415);

  // Only methods declared NO_SIDE_EFFECTS take GET.
  FakeExchange side_effects(f.io, get("/envdtest.Echo/Fail?encoding=json&message=%7B%7D"));
  f.run(side_effects);
  CHECK(side_effects.status == 405);
}

TEST_CASE("rpc: handlers' response headers, trailers and error details reach every protocol") {
  namespace asio = boost::asio;
  rpc::Registry registry;
  registry.add_service(envdtest::EchoRequest::descriptor()->file()->FindServiceByName("Echo"));
  registry.unary<envdtest::EchoRequest, envdtest::EchoResponse>(
      "envdtest.Echo", "Echo",
      [](rpc::CallContext& ctx, const envdtest::EchoRequest& req,
         envdtest::EchoResponse& resp) -> asio::awaitable<rpc::Status> {
        ctx.response_headers.emplace_back("x-h", "1");
        ctx.response_trailers.emplace_back("x-t", "2");
        if (req.text() == "fail") {
          rpc::Status st = rpc::error(rpc::Code::not_found, "nope");
          st.details.push_back({"envdtest.EchoRequest", req.SerializeAsString()});
          co_return st;
        }
        resp.set_text(req.text());
        co_return rpc::Status{};
      });
  registry.server_stream<envdtest::EchoRequest, envdtest::EchoResponse>(
      "envdtest.Echo", "UnimplementedStream",
      [](rpc::CallContext& ctx, const envdtest::EchoRequest&,
         rpc::Writer<envdtest::EchoResponse>&) -> asio::awaitable<rpc::Status> {
        ctx.response_headers.emplace_back("x-h", "1");
        if (!co_await ctx.send_headers()) co_return rpc::error(rpc::Code::canceled, "gone");
        ctx.response_trailers.emplace_back("x-t", "2");
        ctx.response_trailers.emplace_back("x-t", "3");
        co_return rpc::Status{};
      });
  rpc::RpcServer server(registry, rpc::RpcConfig{});
  asio::io_context io;
  auto run = [&](FakeExchange& ex) {
    asio::co_spawn(io, server.serve(ex), asio::detached);
    io.run();
    io.restart();
  };
  auto post = [](std::string path, std::string ct) {
    http::RequestHead h;
    h.method = "POST";
    h.target = std::move(path);
    h.headers.emplace_back("content-type", std::move(ct));
    return h;
  };

  FakeExchange ok(io, post("/envdtest.Echo/Echo", "application/json"), {R"({"text":"a"})"});
  run(ok);
  CHECK(ok.status == 200);
  CHECK(ok.header("x-h") == "1");
  CHECK(ok.header("trailer-x-t") == "2");

  FakeExchange err(io, post("/envdtest.Echo/Echo", "application/json"), {R"({"text":"fail"})"});
  run(err);
  CHECK(err.status == 404);
  CHECK(err.header("x-h") == "1");
  CHECK(err.header("trailer-x-t") == "2");
  // EchoRequest{text: "fail"} = 0a 04 66 61 69 6c, base64 without padding.
  CHECK(err.body ==
        R"({"code":"not_found","details":[{"type":"envdtest.EchoRequest","value":"CgRmYWls"}],"message":"nope"})");

  FakeExchange stream(io, post("/envdtest.Echo/UnimplementedStream", "application/connect+json"),
                      {rpc::encode_envelope(0, "{}")});
  run(stream);
  CHECK(stream.header("x-h") == "1");
  auto fr = frames(stream.body);
  REQUIRE(fr.size() == 1);
  CHECK(fr[0].second == R"({"metadata":{"x-t":["2","3"]}})");

  // gRPC error with headers set: not trailers-only (the headers would read as trailers).
  FakeExchange grpc(io, post("/envdtest.Echo/Echo", "application/grpc+json"),
                    {rpc::encode_envelope(0, R"({"text":"fail"})")});
  run(grpc);
  CHECK(grpc.header("x-h") == "1");
  CHECK_FALSE(grpc.header("grpc-status"));
  CHECK(http::find_header(grpc.trailers, "grpc-status") == "5");
  CHECK(http::find_header(grpc.trailers, "x-t") == "2");
  auto bin = http::find_header(grpc.trailers, "grpc-status-details-bin");
  REQUIRE(bin);
  auto details = base64_decode(*bin, Base64::url_unpadded);  // no +/ in this one
  REQUIRE(details);
  CHECK(details->find("type.googleapis.com/envdtest.EchoRequest") != std::string::npos);
  CHECK(details->find("nope") != std::string::npos);

  FakeExchange web(io, post("/envdtest.Echo/UnimplementedStream", "application/grpc-web+json"),
                   {rpc::encode_envelope(0, "{}")});
  run(web);
  auto wf = frames(web.body);
  REQUIRE(wf.size() == 1);
  CHECK(wf[0].first == rpc::kFlagGrpcWebTrailers);
  CHECK(wf[0].second == "grpc-status: 0\r\nx-t: 2\r\nx-t: 3\r\n");
}
