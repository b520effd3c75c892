#pragma once
// Application keepalives for streaming methods (contract §1.4): the interval comes from the
// `Keepalive-Ping-Interval` header in seconds. Absent or unparsable → 90 s. Zero or negative is
// clamped to kMinKeepalive instead of crashing (envd panics there: [QUIRK][BETTER]).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>

namespace envd::rpc {

inline constexpr std::chrono::seconds kDefaultKeepalive{90};
inline constexpr std::chrono::seconds kMinKeepalive{1};
inline constexpr std::chrono::seconds kMaxKeepalive{24 * 3600};

std::chrono::seconds parse_keepalive_interval(std::optional<std::string_view> header);

// Due when `interval` has passed since the last reset(). A streaming handler calls start() with a
// wake-up for the event it already waits on (its subscriber's "data ready"), sends a keepalive
// whenever take_due() says so, and calls reset() after every data event. A callback rather than a
// waiting coroutine raced against the data: an open stream then costs no extra coroutine frames.
class KeepaliveTimer {
 public:
  KeepaliveTimer(const boost::asio::any_io_executor& ex, std::chrono::steady_clock::duration interval);
  ~KeepaliveTimer();
  KeepaliveTimer(const KeepaliveTimer&) = delete;
  KeepaliveTimer& operator=(const KeepaliveTimer&) = delete;

  void reset() { state_->last = std::chrono::steady_clock::now(); }
  // Calls `wake` (from a handler of its own) each time a keepalive falls due.
  void start(std::function<void()> wake);
  // True once per tick when a keepalive is due; restarts the interval.
  bool take_due();
  std::chrono::steady_clock::duration interval() const { return state_->interval; }

 private:
  struct State {
    State(const boost::asio::any_io_executor& ex, std::chrono::steady_clock::duration i) : timer(ex), interval(i) {}
    boost::asio::steady_timer timer;
    std::chrono::steady_clock::duration interval;
    std::chrono::steady_clock::time_point last = std::chrono::steady_clock::now();
    std::function<void()> wake;  // empty once the owner is gone
    bool due = false;
  };
  // Handlers hold the state, not the timer object: one may already be queued when this goes away.
  static void arm(const std::shared_ptr<State>& s);
  std::shared_ptr<State> state_;
};

}  // namespace envd::rpc
