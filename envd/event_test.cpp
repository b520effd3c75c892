#include "envd/event.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <exception>

using namespace envd;

TEST_CASE("event: 16 waiters that each reset the event after waking all return from one set() (no throw)") {
  // The stdin back-pressure pattern: every waiter re-arms the event for itself. Before counting
  // wake-ups, the second waiter to run saw the event reset by the first and threw
  // operation_aborted (issue 7, item 6: 3+ concurrent SendInput calls → HTTP 500).
  asio::io_context io;
  Event ev(io.get_executor());
  int woken = 0, threw = 0;
  for (int i = 0; i < 16; ++i) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          ev.reset();
          co_await ev.wait();
          ev.reset();
          ++woken;
        },
        [&](std::exception_ptr e) {
          if (e) ++threw;
        });
  }
  asio::post(io, [&] { ev.set(); });
  io.run();
  CHECK(threw == 0);
  CHECK(woken == 16);
}

TEST_CASE("event: a pulse wakes wait_pulse() but not wait(); set() then wakes wait()") {
  asio::io_context io;
  Event ev(io.get_executor());
  int pulsed = 0, waited = 0, threw = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await ev.wait_pulse();
        ++pulsed;
      },
      [&](std::exception_ptr e) {
        if (e) ++threw;
      });
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await ev.wait();
        ++waited;
      },
      [&](std::exception_ptr e) {
        if (e) ++threw;
      });
  asio::post(io, [&] {
    ev.pulse();
    asio::post(io, [&] { ev.set(); });
  });
  io.run();
  CHECK(threw == 0);  // wait() used to throw on a pulse
  CHECK(pulsed == 1);
  CHECK(waited == 1);
}
