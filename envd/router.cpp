#include "envd/router.h"

namespace envd {

namespace {
constexpr const char* kExposedHeaders =
    "Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Location, Cache-Control, X-Content-Type-Options";
constexpr std::string_view kAllowedMethods[] = {"HEAD", "GET", "POST", "PUT", "PATCH", "DELETE"};
}  // namespace

void Router::add(std::string method, std::string path, Handler handler) {
  routes_[std::move(path)][std::move(method)] = std::move(handler);
}

boost::asio::awaitable<void> Router::handle(http::Exchange& ex) {
  const auto& req = ex.request();
  if (req.header("origin")) {
    auto requested = req.header("access-control-request-method");
    if (req.method == "OPTIONS" && requested) {
      // Preflight: answered before auth, like rs/cors.
      http::Headers h{{"vary", "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}};
      std::string method = http::to_lower(*requested);
      for (auto& c : method) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      bool allowed = false;
      for (auto m : kAllowedMethods) allowed = allowed || m == method;
      if (allowed) {
        h.emplace_back("access-control-allow-origin", "*");
        h.emplace_back("access-control-allow-methods", method);
        if (auto rh = req.header("access-control-request-headers"))
          h.emplace_back("access-control-allow-headers", std::string(*rh));
        h.emplace_back("access-control-max-age", "7200");
      }
      co_await ex.respond(204, std::move(h), {});
      co_return;
    }
    ex.extra_headers().emplace_back("vary", "Origin");
    ex.extra_headers().emplace_back("access-control-allow-origin", "*");
    ex.extra_headers().emplace_back("access-control-expose-headers", kExposedHeaders);
  }

  if (auto it = routes_.find(req.path); it != routes_.end()) {
    if (auto m = it->second.find(req.method); m != it->second.end()) {
      co_await m->second(ex);
      co_return;
    }
    http::Headers h{{"content-type", "text/plain; charset=utf-8"}};
    co_await ex.respond(405, std::move(h), {});
    co_return;
  }
  if (rpc_.owns(req.path)) {
    co_await rpc_.serve(ex);
    co_return;
  }
  http::Headers h{{"content-type", "text/plain; charset=utf-8"}, {"x-content-type-options", "nosniff"}};
  co_await ex.respond(404, std::move(h), std::string("404 page not found\n"));
}

}  // namespace envd
