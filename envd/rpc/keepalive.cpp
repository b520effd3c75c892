#include "envd/rpc/keepalive.h"

#include <boost/asio/use_awaitable.hpp>
#include <charconv>

namespace envd::rpc {

std::chrono::seconds parse_keepalive_interval(std::optional<std::string_view> header) {
  if (!header) return kDefaultKeepalive;
  std::string_view s = *header;
  // strconv.Atoi accepts one leading sign.
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  long long v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) return kDefaultKeepalive;
  if (v < kMinKeepalive.count()) return kMinKeepalive;
  if (v > kMaxKeepalive.count()) return kMaxKeepalive;
  return std::chrono::seconds(v);
}

KeepaliveTimer::KeepaliveTimer(const boost::asio::any_io_executor& ex, std::chrono::steady_clock::duration interval)
    : timer_(ex), interval_(interval), last_(std::chrono::steady_clock::now()) {}

boost::asio::awaitable<void> KeepaliveTimer::wait() {
  for (;;) {
    auto due = last_ + interval_;
    if (std::chrono::steady_clock::now() >= due) {
      reset();
      co_return;
    }
    timer_.expires_at(due);
    co_await timer_.async_wait(boost::asio::use_awaitable);
  }
}

}  // namespace envd::rpc
