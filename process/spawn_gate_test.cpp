#include "process/spawn_gate.h"

#include <doctest/doctest.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>
#include <string>

using envd::process::SpawnGate;
namespace asio = boost::asio;

TEST_CASE("spawn gate: one pass at a time, in arrival order, handed on only after handlers posted meanwhile ran") {
  // What keeps a burst of Starts from spawning back to back in one loop turn (issue 7): the next
  // entrant never runs inside the previous one's release, the loop gets a pass in between.
  asio::io_context io;
  SpawnGate gate;
  std::string order;
  int holders = 0, max_holders = 0;
  for (char name : std::string("ABC")) {
    asio::co_spawn(
        io,
        [&, name]() -> asio::awaitable<void> {
          SpawnGate::Pass pass = co_await gate.enter(io.get_executor());
          max_holders = std::max(max_holders, ++holders);
          order += name;
          --holders;
          pass.release();
          asio::post(io, [&, name] { order += static_cast<char>(name + 32); });  // lower case: "loop work"
        },
        asio::detached);
  }
  io.run();
  CHECK(order == "AaBbC" + std::string("c"));
  CHECK(max_holders == 1);
  CHECK(gate.waiting() == 0);

  // Free again: the next entrant passes at once.
  bool entered = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto pass = co_await gate.enter(io.get_executor());
        entered = true;
      },
      asio::detached);
  io.restart();
  io.run();
  CHECK(entered);
}

TEST_CASE("spawn gate: a waiter cancelled before its turn throws operation_aborted and leaves the queue") {
  asio::io_context io;
  SpawnGate gate;
  asio::cancellation_signal cancel;
  std::string order;
  bool aborted = false;
  auto enter = [&](char name) {
    return [&, name]() -> asio::awaitable<void> {
      auto pass = co_await gate.enter(io.get_executor());
      order += name;
      if (name == 'A') {  // once B and C wait: cancel B
        co_await asio::post(io, asio::use_awaitable);
        cancel.emit(asio::cancellation_type::terminal);
      }
    };
  };
  asio::co_spawn(io, enter('A'), asio::detached);
  asio::co_spawn(io, enter('B'), asio::bind_cancellation_slot(cancel.slot(), [&](std::exception_ptr e) {
                   try {
                     if (e) std::rethrow_exception(e);
                   } catch (const boost::system::system_error& err) {
                     aborted = err.code() == asio::error::operation_aborted;
                   }
                 }));
  asio::co_spawn(io, enter('C'), asio::detached);
  io.run();
  CHECK(order == "AC");
  CHECK(aborted);
  CHECK(gate.waiting() == 0);
}
