#pragma once
// A one-loop, many-waiter wake-up primitive built on a steady_timer that never expires: set() and
// pulse() cancel the timer, which wakes every coroutine waiting at that moment.
//
// Wake-ups are counted, not inferred from the flag: a waiter woken by set() returns even when
// another waiter (woken by the same set()) already reset() the event before this one ran. Only a
// wake-up that no set()/pulse() explains is an external cancellation (e.g. awaitable operator||
// or a cancellation slot) and is rethrown as operation_aborted.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <cstdint>

namespace envd {

namespace asio = boost::asio;

class Event {
 public:
  explicit Event(const asio::any_io_executor& ex) : timer_(ex, asio::steady_timer::time_point::max()) {}

  // Latches the event and wakes every current waiter.
  void set() {
    set_ = true;
    ++sets_;
    timer_.cancel();
  }
  void reset() { set_ = false; }
  bool is_set() const { return set_; }

  // Returns once the event is set, or once a set() happened after the wait began (even if the
  // event was reset again since: the caller re-checks its own condition).
  asio::awaitable<void> wait() {
    if (set_) co_return;
    const std::uint64_t sets = sets_;
    for (;;) {
      const std::uint64_t pulses = pulses_;
      boost::system::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (set_ || sets_ != sets) co_return;
      if (ec == asio::error::operation_aborted && pulses_ == pulses) {
        throw boost::system::system_error(ec);  // cancelled from outside, not by set() or pulse()
      }
    }
  }

  // Wakes current waiters without latching (for "something changed, re-check" signals).
  void pulse() {
    ++pulses_;
    timer_.cancel();
  }
  asio::awaitable<void> wait_pulse() {
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

 private:
  asio::steady_timer timer_;
  bool set_ = false;
  std::uint64_t sets_ = 0;    // set() calls so far
  std::uint64_t pulses_ = 0;  // pulse() calls so far
};

}  // namespace envd
