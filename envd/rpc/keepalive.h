#pragma once
// Application keepalives for streaming methods (contract §1.4): the interval comes from the
// `Keepalive-Ping-Interval` header in seconds. Absent or unparsable → 90 s. Zero or negative is
// clamped to kMinKeepalive instead of crashing (envd panics there: [QUIRK][BETTER]).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <optional>
#include <string_view>

namespace envd::rpc {

inline constexpr std::chrono::seconds kDefaultKeepalive{90};
inline constexpr std::chrono::seconds kMinKeepalive{1};
inline constexpr std::chrono::seconds kMaxKeepalive{24 * 3600};

std::chrono::seconds parse_keepalive_interval(std::optional<std::string_view> header);

// Fires when `interval` has passed since the last reset(). A streaming handler awaits wait() in
// its event loop, sends a keepalive when it completes, and calls reset() after every data event.
class KeepaliveTimer {
 public:
  KeepaliveTimer(const boost::asio::any_io_executor& ex, std::chrono::steady_clock::duration interval);

  void reset() { last_ = std::chrono::steady_clock::now(); }
  // Completes once the interval has elapsed since the last reset (then resets itself).
  boost::asio::awaitable<void> wait();
  std::chrono::steady_clock::duration interval() const { return interval_; }

 private:
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::duration interval_;
  std::chrono::steady_clock::time_point last_;
};

}  // namespace envd::rpc
