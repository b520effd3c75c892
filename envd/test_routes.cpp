#include "envd/test_routes.h"

#include <unistd.h>

#include <memory>
#include <string>

#include "envd/blocking.h"

namespace envd {

namespace asio = boost::asio;

namespace {

struct ScopeStats {
  int started = 0;
  int cancelled = 0;  // the pool job saw the token
  int client_gone = 0;
  int shutdown = 0;
};

asio::awaitable<void> wait_cancel(http::Exchange& ex, std::shared_ptr<ScopeStats> stats) {
  auto& scope = ex.scope();
  ++stats->started;
  // Polls the token like a long walk or copy would between chunks of work.
  auto job = [token = scope.token()] {
    while (!is_cancelled(token)) ::usleep(1000);
    return true;
  };
  // Counted before any further co_await: a cancelled coroutine throws at its next suspension.
  auto stop_counting = [stats, &scope] {
    ++stats->cancelled;
    if (scope.reason() == CancelReason::client_gone) ++stats->client_gone;
    if (scope.reason() == CancelReason::shutdown) ++stats->shutdown;
  };
  co_await run_blocking(WorkClass::walk, job);
  stop_counting();
}

Reply stats_reply(const ScopeStats& s) {
  return Reply{200,
               {{"content-type", "application/json"}},
               "{\"started\":" + std::to_string(s.started) + ",\"cancelled\":" + std::to_string(s.cancelled) +
                   ",\"client_gone\":" + std::to_string(s.client_gone) + ",\"shutdown\":" + std::to_string(s.shutdown) +
                   "}"};
}

asio::awaitable<void> scope_stats(http::Exchange& ex, std::shared_ptr<ScopeStats> stats) {
  Reply r = stats_reply(*stats);
  co_await ex.respond(r.status, std::move(r.headers), std::move(r.body));
}

}  // namespace

void register_test_routes(Router& router) {
  auto stats = std::make_shared<ScopeStats>();
  router.add("GET", "/__test/wait-cancel", [stats](http::Exchange& ex) { return wait_cancel(ex, stats); });
  router.add("GET", "/__test/scope-stats", [stats](http::Exchange& ex) { return scope_stats(ex, stats); });
}

}  // namespace envd
