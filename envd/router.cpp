#include "envd/router.h"

#include <chrono>
#include <cstdio>
#include <random>

#include "envd/http_date.h"
#include "envd/log.h"

namespace envd {

namespace {
constexpr const char* kExposedHeaders =
    "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Location, Cache-Control, X-Content-Type-Options";
constexpr std::string_view kAllowedMethods[] = {"HEAD", "GET", "POST", "PUT", "PATCH", "DELETE"};

struct InFlight {
  explicit InFlight(std::size_t& n) : count(n) { ++count; }
  ~InFlight() { --count; }
  std::size_t& count;
};
}  // namespace

Router::Router(rpc::RpcServer& rpc) : rpc_(rpc) {
  // Request ids: a random per-process prefix and a counter, so ids from restarts do not collide.
  std::random_device rd;
  id_prefix_ = (static_cast<std::uint64_t>(rd()) << 32 | rd()) & 0xFFFFFFFFFFull;
}

void Router::add(std::string method, std::string path, Handler handler) {
  routes_[std::move(path)][std::move(method)] = std::move(handler);
}

void Router::use(Middleware step) { steps_.push_back(std::move(step)); }

// The coroutines below stay allocated for as long as a request runs (a whole stream), so what can
// be decided without waiting (CORS, middleware, routing, the log line) lives in plain functions:
// GCC keeps every local and temporary of a coroutine, initializer lists included, in its frame.
boost::asio::awaitable<void> Router::handle(http::Exchange& ex) {
  InFlight guard(in_flight_);
  const auto start = std::chrono::steady_clock::now();
  start_request(ex);
  co_await route(ex);
  log_request(ex, start);
}

void Router::start_request(http::Exchange& ex) {
  char id[32];
  std::snprintf(id, sizeof id, "%010llx%06llx", static_cast<unsigned long long>(id_prefix_),
                static_cast<unsigned long long>(++next_id_ & 0xFFFFFF));
  ex.set_request_id(id);
  // Every routed response carries a Date (RFC 9110 §6.6.1), as Go's net/http adds one.
  ex.extra_headers().emplace_back("date", std::string(http_date_now()));
}

void Router::log_request(http::Exchange& ex, std::chrono::steady_clock::time_point start) {
  const auto& req = ex.request();
  // Probes polled every few seconds (/health, /metrics) log at debug, everything else at info.
  // The query is left out: it can carry a /files signature.
  auto level =
      req.method == "GET" && (req.path == "/health" || req.path == "/metrics") ? log::Level::debug : log::Level::info;
  if (!log::enabled(level)) return;
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  log::write(level, "http", "request",
             {{"request_id", std::string_view(ex.request_id())},
              {"method", req.method},
              {"path", req.path},
              {"status", ex.response_status()},
              {"duration_ms", ms},
              {"http_version", req.version == 20   ? "2"
                               : req.version == 10 ? "1.0"
                                                   : "1.1"}});
}

boost::asio::awaitable<void> Router::route(http::Exchange& ex) {
  Route r = decide(ex);
  if (r.reply) {
    co_await ex.respond(r.reply->status, std::move(r.reply->headers), std::move(r.reply->body));
  } else if (r.handler) {
    co_await (*r.handler)(ex);
  } else {
    co_await rpc_.serve(ex);
  }
}

Router::Route Router::decide(http::Exchange& ex) const {
  const auto& req = ex.request();
  if (req.header("origin")) {
    auto requested = req.header("access-control-request-method");
    if (req.method == "OPTIONS" && requested) {
      // Preflight: answered before auth, like rs/cors.
      Reply reply{204, {{"vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}}, {}};
      std::string method = http::to_lower(*requested);
      for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      bool allowed = false;
      for (auto m : kAllowedMethods) allowed = allowed || m == method;
      if (allowed) {
        reply.headers.emplace_back("access-control-allow-origin", "*");
        reply.headers.emplace_back("access-control-allow-methods", method);
        if (auto rh = req.header("access-control-request-headers"))
          reply.headers.emplace_back("access-control-allow-headers", std::string(*rh));
        reply.headers.emplace_back("access-control-max-age", "7200");
      }
      return {std::move(reply), nullptr};
    }
    ex.extra_headers().emplace_back("vary", "Origin");
    ex.extra_headers().emplace_back("access-control-allow-origin", "*");
    ex.extra_headers().emplace_back("access-control-expose-headers", kExposedHeaders);
  }

  const bool rpc_path = rpc_.owns(req.path);
  for (const auto& step : steps_) {
    if (auto reply = step(req, rpc_path)) return {std::move(reply), nullptr};
  }

  if (auto it = routes_.find(req.path); it != routes_.end()) {
    if (auto m = it->second.find(req.method); m != it->second.end()) return {std::nullopt, &m->second};
    return {Reply{405, {{"content-type", "text/plain; charset=utf-8"}}, {}}, nullptr};
  }
  if (rpc_path) return {std::nullopt, nullptr};  // the RPC server
  return {Reply{404,
                {{"content-type", "text/plain; charset=utf-8"}, {"x-content-type-options", "nosniff"}},
                "404 page not found\n"},
          nullptr};
}

}  // namespace envd
