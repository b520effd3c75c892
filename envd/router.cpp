#include "envd/router.h"

#include <chrono>
#include <cstdio>
#include <random>

#include "envd/error_reply.h"
#include "envd/http_date.h"
#include "envd/json_util.h"
#include "envd/log.h"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace envd {

namespace {
constexpr const char* kExposedHeaders =
    "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Location, Cache-Control, X-Content-Type-Options";
constexpr std::string_view kAllowedMethods[] = {"HEAD", "GET", "POST", "PUT", "PATCH", "DELETE"};

// The answer of a REST request cancelled before its head went out (only shutdown gets here: a
// client that went away gets nothing).
Reply cancelled_reply() {
  return Reply{503, {{"content-type", "text/plain; charset=utf-8"}}, "envd is shutting down\n"};
}

struct InFlight {
  explicit InFlight(std::size_t& n) : count(n) { ++count; }
  ~InFlight() { --count; }
  std::size_t& count;
};
}  // namespace

Reply json_error_reply(int status, std::string_view message) {
  return Reply{status,
               {{"content-type", "application/json; charset=utf-8"}, {"x-content-type-options", "nosniff"}},
               json_error_body(status, message)};
}

Reply text_error_reply(int status, std::string_view message) {
  std::string body(message);
  body += '\n';
  return Reply{
      status, {{"content-type", "text/plain; charset=utf-8"}, {"x-content-type-options", "nosniff"}}, std::move(body)};
}

Router::Router(rpc::RpcServer& rpc) : rpc_(rpc) {
  // Request ids: a random per-process prefix and a counter, so ids from restarts do not collide.
  std::random_device rd;
  id_prefix_ = (static_cast<std::uint64_t>(rd()) << 32 | rd()) & 0xFFFFFFFFFFull;
}

void Router::add(std::string method, std::string path, Handler handler, RouteOptions options) {
  routes_[std::move(path)][std::move(method)] = Entry{std::move(handler), options};
}

std::vector<Router::RouteInfo> Router::routes() const {
  std::vector<RouteInfo> out;
  for (const auto& [path, methods] : routes_)
    for (const auto& [method, entry] : methods) out.push_back({method, path, entry.options.run_to_completion});
  return out;
}

void Router::shutdown() {
  // cancel() only posts callbacks: the set does not change while it is walked.
  for (const auto& scope : scopes_) scope->cancel(CancelReason::shutdown);
}

void Router::open_scope(http::Exchange& ex, bool run_to_completion) {
  auto scope = std::make_shared<RequestScope>(ex.executor(), run_to_completion);
  scopes_.insert(scope);
  ex.set_scope(std::move(scope));
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
  open_scope(ex, r.entry && r.entry->options.run_to_completion);
  // Also runs when the loop is destroyed with the request still suspended (forced exit), maybe
  // after the router: hence the weak reference.
  struct Close {
    std::weak_ptr<int> router_alive;
    Router* router;
    std::shared_ptr<RequestScope> scope;
    ~Close() {
      scope->finish();
      if (!router_alive.expired()) router->scopes_.erase(scope);
    }
  } close{alive_, this, ex.scope_ptr()};
  if (r.reply) {
    co_await ex.respond(r.reply->status, std::move(r.reply->headers), std::move(r.reply->body));
  } else if (r.entry) {
    co_await run_rest(ex, r.entry->handler);
  } else {
    co_await rpc_.serve(ex);
  }
}

// A REST handler runs as its own coroutine with a cancellation slot, so that cancelling the
// request (client gone, shutdown) ends whatever the handler awaits, like an RPC handler's.
boost::asio::awaitable<void> Router::run_rest(http::Exchange& ex, const Handler& handler) {
  auto& scope = ex.scope();
  if (scope.run_to_completion()) {
    co_await handler(ex);
    co_return;
  }
  auto signal = std::make_shared<boost::asio::cancellation_signal>();
  auto id = scope.on_cancel([signal] { signal->emit(boost::asio::cancellation_type::terminal); });
  std::exception_ptr failure;
  bool interrupted = false;
  try {
    co_await boost::asio::co_spawn(ex.executor(), handler(ex),
                                   boost::asio::bind_cancellation_slot(signal->slot(), boost::asio::use_awaitable));
  } catch (...) {
    // A handler ended by our cancellation throws operation_aborted (or whatever it made of it).
    interrupted = true;
    if (!scope.cancelled()) failure = std::current_exception();
  }
  scope.forget(id);
  if (failure) std::rethrow_exception(failure);
  if (!scope.cancelled() || ex.closed()) co_return;
  if (!ex.head_sent()) {
    Reply r = cancelled_reply();
    co_await ex.respond(r.status, std::move(r.headers), std::move(r.body));
  } else if (interrupted) {
    // Stopped mid-body: the client must not take the truncated body for a whole one (a chunked
    // HTTP/1.1 body would otherwise get its final chunk from the session).
    ex.abort_response();
  }
}

Router::Route Router::decide(http::Exchange& ex) const {
  const auto& req = ex.request();
  // Every answer but a preflight varies by Origin (rs/cors says so on all of them, with or without
  // an Origin): a cache must not give an answer without CORS headers to a cross-origin caller.
  if (!(req.method == "OPTIONS" && req.header("origin") && req.header("access-control-request-method")))
    ex.extra_headers().emplace_back("vary", "Origin");
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
    ex.extra_headers().emplace_back("access-control-allow-origin", "*");
    ex.extra_headers().emplace_back("access-control-expose-headers", kExposedHeaders);
  }

  const bool rpc_path = rpc_.owns(req.path);
  for (const auto& step : steps_) {
    if (auto reply = step(req, rpc_path)) return {std::move(reply), nullptr};
  }

  if (auto it = routes_.find(req.path); it != routes_.end()) {
    if (auto m = it->second.find(req.method); m != it->second.end()) return {std::nullopt, &m->second};
    // chi's 405: an Allow header naming the route's methods, no body.
    std::string allow;
    for (const auto& [method, entry] : it->second) allow += (allow.empty() ? "" : ", ") + method;
    return {Reply{405, {{"allow", std::move(allow)}}, {}}, nullptr};
  }
  if (rpc_path) return {std::nullopt, nullptr};  // the RPC server
  return {text_error_reply(404, "404 page not found"), nullptr};
}

}  // namespace envd
