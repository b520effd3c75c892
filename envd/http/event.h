#pragma once
// A one-loop, many-waiter wake-up primitive built on a steady_timer that never expires: set()
// cancels the timer, which wakes every coroutine waiting in wait(). External cancellation of a
// waiter (e.g. by awaitable operator||) is told apart from set() by the flag and rethrown.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>

namespace envd {

namespace asio = boost::asio;

class Event {
 public:
  explicit Event(const asio::any_io_executor& ex) : timer_(ex, asio::steady_timer::time_point::max()) {}

  void set() {
    set_ = true;
    timer_.cancel();
  }
  void reset() { set_ = false; }
  bool is_set() const { return set_; }

  asio::awaitable<void> wait() {
    while (!set_) {
      boost::system::error_code ec;
      co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      if (!set_ && ec == asio::error::operation_aborted) {
        throw boost::system::system_error(ec);  // cancelled from outside, not by set()
      }
    }
  }

  // Wakes current waiters without latching (for "something changed, re-check" signals).
  void pulse() { timer_.cancel(); }
  asio::awaitable<void> wait_pulse() {
    boost::system::error_code ec;
    co_await timer_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }

 private:
  asio::steady_timer timer_;
  bool set_ = false;
};

}  // namespace envd
