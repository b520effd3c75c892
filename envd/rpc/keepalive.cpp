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
    : state_(std::make_shared<State>(ex, interval)) {}

KeepaliveTimer::~KeepaliveTimer() {
  state_->wake = nullptr;
  state_->timer.cancel();
}

void KeepaliveTimer::start(std::function<void()> wake) {
  state_->wake = std::move(wake);
  arm(state_);
}

bool KeepaliveTimer::take_due() {
  if (!state_->due) return false;
  state_->due = false;
  reset();
  arm(state_);
  return true;
}

void KeepaliveTimer::arm(const std::shared_ptr<State>& s) {
  s->timer.expires_at(s->last + s->interval);
  s->timer.async_wait([s](const boost::system::error_code& ec) {
    if (ec || !s->wake) return;
    // A reset() since arming moved the deadline: wait for the rest of it.
    if (std::chrono::steady_clock::now() < s->last + s->interval) return arm(s);
    s->due = true;
    s->wake();
  });
}

}  // namespace envd::rpc
