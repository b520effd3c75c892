#pragma once
// Routes a request: CORS (contract §1.5), then the middleware steps (access token gate, Basic
// user check: contract §1.2's handler chain), then REST endpoints by exact method+path, RPC
// services, and chi-like 404/405 answers for everything else. Logs one line per request.
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "envd/http/exchange.h"
#include "envd/request_scope.h"
#include "envd/rpc/rpc_server.h"

namespace envd {

// A whole response decided without reading the request body (a middleware refusal).
struct Reply {
  int status = 200;
  http::Headers headers;
  std::string body;
};

// Per-route options. run_to_completion: nothing cancels the request (client gone, shutdown): thaw
// operations (/fsthaw, /unfreeze, the /init thaw) must never stop half-way.
struct RouteOptions {
  bool run_to_completion = false;
};

class Router {
 public:
  using Handler = std::function<boost::asio::awaitable<void>(http::Exchange&)>;
  // A middleware step: nullopt lets the request through, a Reply answers it instead.
  // `rpc_path` tells whether the path belongs to an RPC service.
  using Middleware = std::function<std::optional<Reply>(const http::RequestHead&, bool rpc_path)>;

  explicit Router(rpc::RpcServer& rpc);

  void add(std::string method, std::string path, Handler handler, RouteOptions options = {});
  // Steps run in the order they were added, after CORS preflight and before routing.
  void use(Middleware step);
  boost::asio::awaitable<void> handle(http::Exchange& ex);

  // Every registered REST route, sorted by path then method (--print-routes).
  struct RouteInfo {
    std::string method;
    std::string path;
    bool run_to_completion = false;
  };
  std::vector<RouteInfo> routes() const;

  // Requests whose handler has not returned yet (graceful shutdown waits for them).
  std::size_t in_flight() const { return in_flight_; }

  // Graceful shutdown: cancels the scope of every request in flight, REST and RPC (except
  // run_to_completion routes). A REST handler's coroutine gets asio's terminal cancellation; one
  // cancelled before its response head answers 503.
  void shutdown();

 private:
  // What to do with a request: a ready answer, a REST handler, or (neither) the RPC server.
  struct Entry {
    Handler handler;
    RouteOptions options;
  };
  struct Route {
    std::optional<Reply> reply;
    const Entry* entry = nullptr;
  };
  Route decide(http::Exchange& ex) const;
  boost::asio::awaitable<void> route(http::Exchange& ex);
  boost::asio::awaitable<void> run_rest(http::Exchange& ex, const Handler& handler);
  void open_scope(http::Exchange& ex, bool run_to_completion);
  void start_request(http::Exchange& ex);
  void log_request(http::Exchange& ex, std::chrono::steady_clock::time_point start);

  rpc::RpcServer& rpc_;
  std::map<std::string, std::map<std::string, Entry>, std::less<>> routes_;  // path → method → handler
  std::set<std::shared_ptr<RequestScope>> scopes_;                           // requests in flight
  std::shared_ptr<int> alive_ = std::make_shared<int>(0);                    // expires with the router
  std::vector<Middleware> steps_;
  std::size_t in_flight_ = 0;
  std::uint64_t id_prefix_ = 0;
  std::uint64_t next_id_ = 0;
};

}  // namespace envd
