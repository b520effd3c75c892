#include "process/output_fanout.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <cstring>

namespace envd::process {

namespace {
// Free buffers kept for reuse. Small: idle envd must stay small, and a busy stream only needs a
// handful in flight (its queue bound divided by the chunk size).
constexpr std::size_t kMaxFreeChunks = 8;
// Owning, so that buffers still pooled at exit are freed (no false leak reports).
std::vector<std::unique_ptr<Chunk>>& free_chunks() {
  static std::vector<std::unique_ptr<Chunk>> pool;
  return pool;
}
}  // namespace

ChunkRef::ChunkRef(Chunk* c) : c_(c) {
  if (c_) ++c_->refs_;
}
ChunkRef::ChunkRef(const ChunkRef& o) : c_(o.c_) {
  if (c_) ++c_->refs_;
}
ChunkRef::~ChunkRef() {
  if (c_ && --c_->refs_ == 0) {
    auto& pool = free_chunks();
    if (c_->capacity_ == Chunk::kCapacity && pool.size() < kMaxFreeChunks) {
      c_->size = 0;
      pool.emplace_back(c_);
    } else {
      delete c_;
    }
  }
}

ChunkRef Chunk::acquire() {
  auto& pool = free_chunks();
  if (!pool.empty()) {
    Chunk* c = pool.back().release();
    pool.pop_back();
    return ChunkRef(c);
  }
  return ChunkRef(new Chunk(kCapacity));
}

ChunkRef Chunk::copy_of(const char* data, std::size_t n, OutputStream stream) {
  ChunkRef c(new Chunk(n));
  std::memcpy(c->data(), data, n);
  c->size = n;
  c->stream = stream;
  return c;
}

ChunkRef Subscriber::pop() {
  if (queue_.empty()) return {};
  ChunkRef c = queue_.take_front();
  queued_bytes_ -= c->size;
  if (fanout_ && !fanout_->over(*this)) {
    full_since_.reset();
    fanout_->notify_publishers();
  }
  return c;
}

OutputFanout::~OutputFanout() {
  for (auto& s : subs_) s->fanout_ = nullptr;
}

std::shared_ptr<Subscriber> OutputFanout::subscribe() {
  auto s = std::make_shared<Subscriber>(ex_);
  s->fanout_ = this;
  if (closed_) s->ready.set();
  subs_.push_back(s);
  // A new subscriber waiting for output may make a stalled one droppable: re-evaluate.
  notify_publishers();
  return s;
}

void OutputFanout::unsubscribe(const std::shared_ptr<Subscriber>& s) {
  auto it = std::find(subs_.begin(), subs_.end(), s);
  if (it != subs_.end()) subs_.erase(it);
  s->fanout_ = nullptr;
  s->queue_.clear();
  s->queued_bytes_ = 0;
  notify_publishers();
}

void OutputFanout::drop(Subscriber& s) {
  s.dropped_ = true;
  s.queue_.clear();
  s.queued_bytes_ = 0;
  s.fanout_ = nullptr;
  s.ready.set();
  ++dropped_total_;
  subs_.erase(std::remove_if(subs_.begin(), subs_.end(), [&](const auto& p) { return p.get() == &s; }), subs_.end());
}

void OutputFanout::notify_publishers() {
  for (auto* t : waiting_publishers_) t->cancel();
}

void OutputFanout::close() {
  closed_ = true;
  for (auto& s : subs_) s->ready.set();
  notify_publishers();
}

bool OutputFanout::offer(ChunkRef chunk, asio::steady_timer& waiter, std::function<void()> resume) {
  if (closed_ || subs_.empty() || !chunk || chunk->size == 0) return true;
  for (auto& s : subs_) {
    s->queue_.push_back(chunk);
    s->queued_bytes_ += chunk->size;
    s->ready.set();
  }
  auto until = blocked();
  if (!until) return true;
  wait_for_room(waiter, *until, std::move(resume));
  return false;
}

void OutputFanout::wait_for_room(asio::steady_timer& waiter, std::chrono::steady_clock::time_point until,
                                 std::function<void()> resume) {
  waiter.expires_at(until);
  waiting_publishers_.push_back(&waiter);
  // The publisher keeps itself (and so this fan-out and its timer) alive through `resume`.
  waiter.async_wait([this, &waiter, resume = std::move(resume)](const boost::system::error_code&) mutable {
    std::erase(waiting_publishers_, &waiter);
    if (auto next = blocked()) return wait_for_room(waiter, *next, std::move(resume));
    resume();
  });
}

std::optional<std::chrono::steady_clock::time_point> OutputFanout::blocked() {
  for (;;) {
    if (closed_) return std::nullopt;
    auto now = std::chrono::steady_clock::now();
    bool any_over = false, any_waiting = false;
    for (auto& s : subs_) {
      if (over(*s)) {
        any_over = true;
        if (!s->full_since_) s->full_since_ = now;
      } else {
        s->full_since_.reset();
        any_waiting = true;
      }
    }
    if (!any_over) return std::nullopt;
    // Every subscriber slow: pure back-pressure, nobody is dropped. Otherwise a subscriber that
    // has been full for the stall time is holding the others back: drop it.
    std::optional<std::chrono::steady_clock::time_point> next_drop;
    if (any_waiting) {
      std::vector<Subscriber*> victims;
      for (auto& s : subs_) {
        if (!s->full_since_) continue;
        auto due = *s->full_since_ + limits_.stall_timeout;
        if (due <= now)
          victims.push_back(s.get());
        else if (!next_drop || due < *next_drop)
          next_drop = due;
      }
      if (!victims.empty()) {
        for (auto* v : victims) drop(*v);
        continue;
      }
    }
    return next_drop ? *next_drop : asio::steady_timer::time_point::max();
  }
}

}  // namespace envd::process
