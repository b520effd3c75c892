#pragma once
// Lets one process spawn through per pass of the event loop.
//
// A fork costs envd ~1 ms of CPU (page tables, fd table, the copy-on-write faults that follow) and
// more as its heap grows. Requests that arrive together (1,000 Starts in one read of an h2
// connection, or on many connections made readable by one epoll_wait) used to spawn back to back
// in a single loop turn: /health and every other connection waited seconds. Through the gate,
// each spawn after the first is handed its turn by a posted handler, so the loop polls sockets and
// runs timers between two spawns. Waiting for the gate can be cancelled (client gone, deadline).
#include <algorithm>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/system/system_error.hpp>
#include <deque>
#include <memory>

namespace envd::process {

class SpawnGate {
  struct Waiter {
    explicit Waiter(const boost::asio::any_io_executor& ex) : timer(ex, boost::asio::steady_timer::time_point::max()) {}
    boost::asio::steady_timer timer;
    bool granted = false;
  };
  struct State {
    bool busy = false;
    std::deque<Waiter*> waiters;
  };

 public:
  // Held while spawning; its end hands the gate on (after the loop has polled once).
  class Pass {
   public:
    Pass() = default;
    explicit Pass(std::shared_ptr<State> s, boost::asio::any_io_executor ex) : state_(std::move(s)), ex_(ex) {}
    Pass(Pass&& o) noexcept = default;
    Pass& operator=(Pass&&) = delete;
    ~Pass() { release(); }
    void release() {
      if (!state_) return;
      boost::asio::post(ex_, [s = std::move(state_)] { hand_over(*s); });
      state_.reset();
    }

   private:
    std::shared_ptr<State> state_;
    boost::asio::any_io_executor ex_;
  };

  // Returns the pass once it is this caller's turn; throws operation_aborted when cancelled first.
  boost::asio::awaitable<Pass> enter(const boost::asio::any_io_executor& ex) {
    if (!state_->busy) {
      state_->busy = true;
      co_return Pass(state_, ex);
    }
    Waiter w(ex);
    state_->waiters.push_back(&w);
    struct Unlist {  // a waiter cancelled (or destroyed) before its turn leaves the queue
      State& s;
      Waiter& w;
      ~Unlist() {
        if (!w.granted) std::erase(s.waiters, &w);
      }
    } unlist{*state_, w};
    boost::system::error_code ec;
    co_await w.timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
    if (!w.granted) throw boost::system::system_error(boost::asio::error::operation_aborted);
    co_return Pass(state_, ex);
  }

  std::size_t waiting() const { return state_->waiters.size(); }

 private:
  static void hand_over(State& s) {
    if (s.waiters.empty()) {
      s.busy = false;
      return;
    }
    Waiter* w = s.waiters.front();
    s.waiters.pop_front();
    w->granted = true;  // the gate stays busy: the pass goes to this waiter
    w->timer.cancel();
  }

  std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace envd::process
