#include "envd/control.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <nlohmann/json.hpp>

#include "envd/access.h"
#include "envd/flags.h"
#include "envd/json_util.h"
#include "process/process_service.h"
#include "tests/fake_exchange.h"

using namespace envd;
using envd::testing::FakeExchange;

namespace {

// The daemon's wiring (main.cpp) on fake exchanges.
struct Daemon {
  boost::asio::io_context io;
  rpc::Registry registry;
  rpc::RpcServer rpc{registry, rpc::RpcConfig{}};
  SandboxState state;
  MetricsSampler metrics{io.get_executor(), std::chrono::milliseconds(1000)};
  Router router{rpc};

  Daemon() {
    process::ServiceConfig pcfg;
    pcfg.cgroups = false;
    process::register_service(registry, state, pcfg);
    state.internal_env["E2B_SANDBOX"] = "false";
    router.use([this](const http::RequestHead& req, bool) { return check_access_token(state, req); });
    router.use([this](const http::RequestHead& req, bool rpc_path) { return check_basic_user(state, req, rpc_path); });
    register_control_routes(router, state, metrics, ControlOptions{});
  }

  std::unique_ptr<FakeExchange> call(std::string method, std::string target, std::string body = {},
                                     http::Headers headers = {}) {
    http::RequestHead h;
    h.method = std::move(method);
    h.target = std::move(target);
    h.headers = std::move(headers);
    std::deque<std::string> pieces;
    if (!body.empty()) pieces.push_back(std::move(body));
    auto ex = std::make_unique<FakeExchange>(io, std::move(h), std::move(pieces));
    boost::asio::co_spawn(io, router.handle(*ex), boost::asio::detached);
    io.run();
    io.restart();
    return ex;
  }
  std::unique_ptr<FakeExchange> init(std::string body, http::Headers headers = {}) {
    return call("POST", "/init", std::move(body), std::move(headers));
  }
};

}  // namespace

TEST_CASE("control: Go-compatible JSON strings") {
  CHECK(go_json_string("a\"b\\c\n\t\x01") == R"("a\"b\\c\n\t\u0001")");
  CHECK(go_json_string("<a&b>") == R"("\u003ca\u0026b\u003e")");
  CHECK(go_json_string("\xE2\x80\xA8 é \xF0\x9F\x98\x80") == "\"\\u2028 é \xF0\x9F\x98\x80\"");
  CHECK(go_json_string("bad\xFF\xC3") == R"("bad\ufffd\ufffd")");
  CHECK(json_error_body(404, "x") == "{\"code\":404,\"message\":\"x\"}\n");
}

TEST_CASE("control: /health and /envs") {
  Daemon d;
  auto h = d.call("GET", "/health");
  CHECK(h->status == 204);
  CHECK(h->header("cache-control") == "no-store");
  CHECK(h->body.empty());

  d.state.user_env["Z"] = "<z>";
  auto e = d.call("GET", "/envs");
  CHECK(e->status == 200);
  CHECK(e->header("cache-control") == "no-store");
  CHECK(e->header("content-type") == "application/json");
  CHECK(e->body == "{\"E2B_SANDBOX\":\"false\",\"Z\":\"\\u003cz\\u003e\"}\n");
  CHECK(wants_history("history=1"));
  CHECK(wants_history("a=b&history=true"));
  CHECK_FALSE(wants_history("history=0"));
  CHECK_FALSE(wants_history("xhistory=1"));
}

TEST_CASE("control: /init answers, token set/replace/clear, gate") {
  Daemon d;
  auto bad = d.init("{nope");
  CHECK(bad->status == 400);
  CHECK(bad->body.empty());
  CHECK(bad->header("x-envd-version") == kVersion);

  auto first = d.init(R"({"accessToken":"one","envVars":{"A":"1"},"timestamp":"2030-01-01T00:00:00Z"})");
  CHECK(first->status == 204);
  CHECK(first->header("x-envd-version") == kVersion);
  CHECK(first->header("cache-control") == "no-store");
  CHECK(d.state.access_token == "one");
  CHECK(d.state.initialized);

  // The gate is up now: /envs needs the header; /health and /init do not.
  CHECK(d.call("GET", "/envs")->status == 401);
  CHECK(d.call("GET", "/envs", {}, {{"x-access-token", "one"}})->status == 200);
  CHECK(d.call("GET", "/health")->status == 204);
  CHECK(d.call("GET", "/nowhere")->status == 401);
  CHECK(d.call("GET", "/nowhere", {}, {{"x-access-token", "one"}})->status == 404);
  auto rpc = d.call("POST", "/process.Process/List", "{}", {{"content-type", "application/json"}});
  CHECK(rpc->status == 401);
  CHECK(rpc->header("content-type") == "application/json; charset=utf-8");
  // CORS preflight is answered before the gate.
  auto pre = d.call("OPTIONS", "/envs", {}, {{"origin", "http://x"}, {"access-control-request-method", "GET"}});
  CHECK(pre->status == 204);

  auto wrong = d.init(R"({"accessToken":"two"})");
  CHECK(wrong->status == 401);
  CHECK(wrong->body == "access token validation failed");
  CHECK_FALSE(wrong->header("x-content-type-options"));
  CHECK(wrong->header("content-type") == "text/plain; charset=utf-8");
  auto reset = d.init("");
  CHECK(reset->status == 401);
  CHECK(reset->body == "access token reset not authorized");
  CHECK(d.state.access_token == "one");

  // Replace: the header proves the current token, the body carries the new one.
  CHECK(d.init(R"({"accessToken":"two"})", {{"x-access-token", "one"}})->status == 204);
  CHECK(d.state.access_token == "two");
  // Re-init with the same token in the body (the orchestrator's way), older timestamp: 204, skipped.
  d.state.user_env = {{"KEEP", "1"}};
  CHECK(d.init(R"({"accessToken":"two","envVars":{},"timestamp":"2029-01-01T00:00:00Z"})")->status == 204);
  CHECK(d.state.user_env.count("KEEP") == 1);
  // Clear: header proves the token, body has none.
  CHECK(d.init("{}", {{"x-access-token", "two"}})->status == 204);
  CHECK_FALSE(d.state.access_token);
  CHECK(d.call("GET", "/envs")->status == 200);

  // Orchestrator-only fields are accepted and ignored.
  auto orch = d.init(R"({"hyperloopIP":"10.1.1.1","caBundle":"PEM","volumeMounts":[],"lifecycleID":"x",)"
                     R"("defaultUser":"nobody","defaultWorkdir":"/tmp"})");
  CHECK(orch->status == 204);
  CHECK(d.state.default_user == "nobody");
  CHECK(d.state.default_workdir == "/tmp");
}

TEST_CASE("control: unknown Basic user on REST routes, /health stays open") {
  Daemon d;
  http::Headers bogus{{"authorization", "Basic Ym9ndXMtdXNlcjo="}};
  auto e = d.call("GET", "/envs", {}, bogus);
  CHECK(e->status == 401);
  CHECK(e->body == R"({"code":"unauthenticated","message":"invalid username: 'bogus-user'"})");
  CHECK(d.call("GET", "/health", {}, bogus)->status == 204);
  CHECK(d.call("POST", "/init", "{}", bogus)->status == 401);
  // Token gate first (contract §1.2 order): no token and a bogus user → the token's 401.
  d.state.access_token = "t";
  CHECK(d.call("GET", "/envs", {}, bogus)->body.find("access token") != std::string::npos);
}

TEST_CASE("control: /metrics and its history") {
  Daemon d;
  auto m = d.call("GET", "/metrics");
  CHECK(m->status == 200);
  CHECK(m->header("cache-control") == "no-store");
  CHECK(m->header("content-type") == "application/json");
  REQUIRE(m->body.back() == '\n');
  auto j = nlohmann::json::parse(m->body);
  for (auto k : {"ts", "cpu_count", "cpu_used_pct", "mem_total_mib", "mem_used_mib", "mem_total", "mem_used",
                 "mem_cache", "disk_used", "disk_total"}) {
    CHECK_MESSAGE(j.contains(k), k);
  }
  CHECK(nlohmann::json::parse(d.call("GET", "/metrics?history=1")->body).empty());
  d.metrics.sample();
  d.metrics.sample();
  auto h = nlohmann::json::parse(d.call("GET", "/metrics?history=1")->body);
  REQUIRE(h.is_array());
  CHECK(h.size() == 2);
  CHECK(h[0]["ts"].get<std::int64_t>() <= h[1]["ts"].get<std::int64_t>());
  auto not_allowed = d.call("POST", "/metrics");
  CHECK(not_allowed->status == 405);
  CHECK(not_allowed->header("allow") == "GET");
}
