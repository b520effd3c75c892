#include "envd/request_scope.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "envd/router.h"
#include "tests/fake_exchange.h"

using namespace envd;
namespace asio = boost::asio;
using envd::testing::FakeExchange;

TEST_CASE("request scope: callbacks run once, posted, first reason wins") {
  asio::io_context io;
  auto scope = std::make_shared<RequestScope>(io.get_executor());
  auto token = scope->token();
  int a = 0, b = 0, c = 0;
  scope->on_cancel([&] { ++a; });
  auto id = scope->on_cancel([&] { ++b; });
  scope->on_cancel([&] { ++c; });
  scope->forget(id);
  CHECK_FALSE(is_cancelled(token));
  scope->cancel(CancelReason::client_gone);
  CHECK(is_cancelled(token));  // at once, for pool jobs
  CHECK(a == 0);               // callbacks: in a handler of their own
  scope->cancel(CancelReason::shutdown);
  CHECK(scope->reason() == CancelReason::client_gone);
  io.run();
  CHECK(a == 1);
  CHECK(b == 0);
  CHECK(c == 1);
  // Registered after the cancellation: runs too.
  int late = 0;
  scope->on_cancel([&] { ++late; });
  io.restart();
  io.run();
  CHECK(late == 1);
}

TEST_CASE("request scope: run_to_completion and finished scopes are never cancelled") {
  asio::io_context io;
  auto thaw = std::make_shared<RequestScope>(io.get_executor(), true);
  int fired = 0;
  thaw->on_cancel([&] { ++fired; });
  thaw->cancel(CancelReason::shutdown);
  CHECK_FALSE(thaw->cancelled());
  CHECK_FALSE(is_cancelled(thaw->token()));

  auto done = std::make_shared<RequestScope>(io.get_executor());
  done->on_cancel([&] { ++fired; });
  done->finish();
  done->cancel(CancelReason::client_gone);
  CHECK_FALSE(done->cancelled());
  io.run();
  CHECK(fired == 0);
}

TEST_CASE("request scope: callbacks dropped when the request ends before they run") {
  asio::io_context io;
  auto scope = std::make_shared<RequestScope>(io.get_executor());
  int fired = 0;
  scope->on_cancel([&] { ++fired; });
  scope->cancel(CancelReason::deadline);
  scope->finish();
  io.run();
  CHECK(fired == 0);
}

namespace {

struct RestFixture {
  // The loop goes first when the fixture is destroyed: it destroys the suspended requests while
  // the router still exists.
  rpc::Registry registry;
  rpc::RpcServer rpc{registry, rpc::RpcConfig{}};
  Router router{rpc};
  asio::io_context io;
  int handler_ended_normally = 0;
  int handler_saw_abort = 0;
  bool token_set_at_abort = false;
  std::shared_ptr<RequestScope> seen;

  RestFixture() {
    // Waits "forever" on a timer: only cancellation ends it.
    auto wait = [this](http::Exchange& ex) -> asio::awaitable<void> {
      seen = ex.scope_ptr();
      asio::steady_timer t(ex.executor(), std::chrono::hours(1));
      try {
        co_await t.async_wait(asio::use_awaitable);
        ++handler_ended_normally;
      } catch (const boost::system::system_error& e) {
        if (e.code() == asio::error::operation_aborted) ++handler_saw_abort;
        token_set_at_abort = is_cancelled(seen->token());
        throw;
      }
    };
    router.add("GET", "/wait", wait);
    // Sends its head and a first piece, then waits.
    router.add("GET", "/stream", [wait](http::Exchange& ex) -> asio::awaitable<void> {
      http::ResponseHead head;
      co_await ex.write_head(std::move(head));
      co_await ex.write_body(std::string("partial"));
      co_await wait(ex);
    });
    router.add("POST", "/thaw", wait, RouteOptions{.run_to_completion = true});
  }

  std::unique_ptr<FakeExchange> start(std::string method, std::string path) {
    http::RequestHead h;
    h.method = std::move(method);
    h.target = std::move(path);
    auto ex = std::make_unique<FakeExchange>(io, std::move(h));
    asio::co_spawn(io, router.handle(*ex), asio::detached);
    io.poll();
    return ex;
  }
};

}  // namespace

TEST_CASE("request scope: a REST handler is cancelled when its client goes away") {
  RestFixture f;
  auto ex = f.start("GET", "/wait");
  REQUIRE(f.seen);
  CHECK(f.router.in_flight() == 1);
  ex->close();
  f.io.run();
  CHECK(f.handler_saw_abort == 1);
  CHECK(f.token_set_at_abort);
  CHECK(f.seen->reason() == CancelReason::client_gone);
  CHECK(f.router.in_flight() == 0);
  CHECK(ex->status == 0);  // nothing answered to a client that is gone
}

TEST_CASE("request scope: shutdown cancels REST handlers (503) but not run_to_completion routes") {
  RestFixture f;
  auto ex = f.start("GET", "/wait");
  auto thaw = f.start("POST", "/thaw");
  CHECK(f.router.in_flight() == 2);
  f.router.shutdown();
  f.io.poll();
  CHECK(f.handler_saw_abort == 1);
  CHECK(ex->status == 503);
  CHECK(f.router.in_flight() == 1);  // the thaw still runs
  CHECK(f.seen->run_to_completion());
  thaw->close();  // nor does its client going away stop it
  f.io.poll();
  CHECK(f.router.in_flight() == 1);
  CHECK(f.handler_saw_abort == 1);
  f.io.stop();
}

TEST_CASE("request scope: a REST response cancelled mid-body is aborted, not finished") {
  RestFixture f;
  auto ex = f.start("GET", "/stream");
  CHECK(ex->status == 200);
  CHECK(ex->body == "partial");
  f.router.shutdown();
  f.io.run();
  CHECK(f.handler_saw_abort == 1);
  CHECK(ex->aborted);
  CHECK_FALSE(ex->finished);
}
