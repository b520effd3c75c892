#include "envd/request_scope.h"

#include <algorithm>
#include <boost/asio/post.hpp>

namespace envd {

std::uint64_t RequestScope::on_cancel(std::function<void()> fn) {
  std::uint64_t id = ++next_id_;
  if (finished_ || !fn) return id;
  callbacks_.emplace_back(id, std::move(fn));
  if (cancelled() && !posted_) {
    posted_ = true;
    boost::asio::post(ex_, [self = shared_from_this()] { self->run_callbacks(); });
  }
  return id;
}

void RequestScope::forget(std::uint64_t id) {
  callbacks_.erase(std::remove_if(callbacks_.begin(), callbacks_.end(), [id](const auto& c) { return c.first == id; }),
                   callbacks_.end());
}

void RequestScope::cancel(CancelReason why) {
  if (finished_ || run_to_completion_ || cancelled() || why == CancelReason::none) return;
  reason_ = why;
  flag_->store(true, std::memory_order_relaxed);
  if (!callbacks_.empty() && !posted_) {
    posted_ = true;
    boost::asio::post(ex_, [self = shared_from_this()] { self->run_callbacks(); });
  }
}

void RequestScope::run_callbacks() {
  posted_ = false;
  // Callbacks may register or forget others: run a snapshot, one at a time.
  while (!finished_ && !callbacks_.empty()) {
    auto fn = std::move(callbacks_.front().second);
    callbacks_.erase(callbacks_.begin());
    fn();
  }
}

void RequestScope::finish() {
  finished_ = true;
  callbacks_.clear();
}

}  // namespace envd
