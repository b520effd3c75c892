#pragma once
// Routes a request: CORS (contract §1.5), REST endpoints by exact method+path, RPC services,
// and chi-like 404/405 answers for everything else.
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <string>

#include "envd/http/exchange.h"
#include "envd/rpc/rpc_server.h"

namespace envd {

class Router {
 public:
  using Handler = std::function<boost::asio::awaitable<void>(http::Exchange&)>;

  explicit Router(rpc::RpcServer& rpc) : rpc_(rpc) {}

  void add(std::string method, std::string path, Handler handler);
  boost::asio::awaitable<void> handle(http::Exchange& ex);

 private:
  rpc::RpcServer& rpc_;
  std::map<std::string, std::map<std::string, Handler>, std::less<>> routes_;  // path → method → handler
};

}  // namespace envd
