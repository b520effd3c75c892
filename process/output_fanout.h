#pragma once
// Fan-out of a process's output to its subscribers (the Start stream and any Connect streams),
// contract §4.12 made "better than envd":
//  - each subscriber has its own bounded queue; chunks are shared, never copied per subscriber;
//  - when a queue is over its bound the publisher (the pipe reader) waits: a sole slow subscriber
//    back-pressures the process through the pipe and loses nothing;
//  - a subscriber whose queue has stayed full for `stall_timeout` while another subscriber is
//    waiting for output (e.g. a new Connect) is dropped, so one stuck client never wedges the rest;
//  - with no subscriber, output is discarded (the process never blocks on its output).
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "envd/event.h"
#include "envd/fifo.h"

namespace envd::process {

namespace asio = boost::asio;

enum class OutputStream : std::uint8_t { stdout_stream, stderr_stream, pty_stream };

// A pooled, reference-counted read buffer: the loop reads into it once and every subscriber sends
// from it. Buffers go back to a small free list, so steady streaming allocates nothing per chunk.
class Chunk;
class ChunkRef {
 public:
  ChunkRef() = default;
  explicit ChunkRef(Chunk* c);
  ChunkRef(const ChunkRef& o);
  ChunkRef(ChunkRef&& o) noexcept : c_(o.c_) { o.c_ = nullptr; }
  ChunkRef& operator=(ChunkRef o) noexcept {
    std::swap(c_, o.c_);
    return *this;
  }
  ~ChunkRef();

  Chunk* operator->() const { return c_; }
  Chunk& operator*() const { return *c_; }
  explicit operator bool() const { return c_ != nullptr; }

 private:
  Chunk* c_ = nullptr;
};

class Chunk {
 public:
  static constexpr std::size_t kCapacity = 128 * 1024;  // reads sized for throughput (≥ 64 KiB)
  static ChunkRef acquire();
  // A right-sized copy for a small read, so that a quiet process never pins a full buffer while
  // its output waits in a queue (memory per stream).
  static ChunkRef copy_of(const char* data, std::size_t n, OutputStream stream);
  static constexpr std::size_t kSmall = 16 * 1024;

  char* data() { return buf_.get(); }
  const char* data() const { return buf_.get(); }
  std::size_t size = 0;
  OutputStream stream = OutputStream::stdout_stream;
  std::uint64_t offset = 0;  // of the first byte in its stream (DataEvent.offset, issue 13)

 private:
  friend class ChunkRef;
  explicit Chunk(std::size_t capacity) : buf_(new char[capacity]), capacity_(capacity) {}
  std::unique_ptr<char[]> buf_;
  std::size_t capacity_;
  int refs_ = 0;
};

struct FanoutLimits {
  std::size_t queue_bytes = 256 * 1024;  // per subscriber
  std::chrono::milliseconds stall_timeout{10'000};
};

class OutputFanout;

using ChunkQueue = Fifo<ChunkRef>;

class Subscriber {
 public:
  explicit Subscriber(const asio::any_io_executor& ex) : ready(ex) {}
  // Next queued chunk, or an empty ref. Tells the fan-out that room was made.
  ChunkRef pop();
  bool dropped() const { return dropped_; }
  std::size_t queued_bytes() const { return queued_bytes_; }

  // Set whenever a chunk arrives, the stream ends or the subscriber is dropped.
  Event ready;
  // Issue 13.2: this stream asked for EndEvent.cause (read by the RPC handlers, not the fan-out).
  bool end_cause = false;

 private:
  friend class OutputFanout;
  OutputFanout* fanout_ = nullptr;
  ChunkQueue queue_;
  std::size_t queued_bytes_ = 0;
  bool dropped_ = false;
  std::optional<std::chrono::steady_clock::time_point> full_since_;
};

class OutputFanout {
 public:
  OutputFanout(const asio::any_io_executor& ex, FanoutLimits limits) : ex_(ex), limits_(limits) {}
  ~OutputFanout();
  OutputFanout(const OutputFanout&) = delete;
  OutputFanout& operator=(const OutputFanout&) = delete;

  std::shared_ptr<Subscriber> subscribe();
  void unsubscribe(const std::shared_ptr<Subscriber>& s);

  // Queues `chunk` for every subscriber. Returns true when the publisher may go on at once (also
  // when there is no subscriber or the fan-out is closed: the chunk is discarded). Returns false
  // while back-pressure applies: `resume` is then called, from a handler of its own, once the
  // publisher may go on. `waiter` is the publisher's own timer for that wait. Callbacks rather
  // than a coroutine: a pipe reader then costs no coroutine frame for the life of its process.
  bool offer(ChunkRef chunk, asio::steady_timer& waiter, std::function<void()> resume);

  // No more output: wakes every subscriber (which then sends the end event after its queue).
  void close();
  bool closed() const { return closed_; }
  std::size_t subscriber_count() const { return subs_.size(); }
  std::uint64_t dropped_count() const { return dropped_total_; }

 private:
  friend class Subscriber;
  void notify_publishers();
  void drop(Subscriber& s);
  // nullopt when a publisher may go on; otherwise when to look again (unless notified earlier).
  // Drops stalled subscribers on the way.
  std::optional<std::chrono::steady_clock::time_point> blocked();
  void wait_for_room(asio::steady_timer& waiter, std::chrono::steady_clock::time_point until,
                     std::function<void()> resume);
  bool over(const Subscriber& s) const { return s.queued_bytes_ >= limits_.queue_bytes; }

  asio::any_io_executor ex_;
  FanoutLimits limits_;
  std::vector<std::shared_ptr<Subscriber>> subs_;
  std::vector<asio::steady_timer*> waiting_publishers_;
  bool closed_ = false;
  std::uint64_t dropped_total_ = 0;
};

// Unsubscribes on destruction: a Start/Connect handler unwound by a client disconnect stops
// receiving, and the process carries on.
class Subscription {
 public:
  Subscription(OutputFanout& f, std::shared_ptr<Subscriber> s) : fanout_(&f), sub_(std::move(s)) {}
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;
  ~Subscription() { fanout_->unsubscribe(sub_); }
  Subscriber& operator*() const { return *sub_; }
  Subscriber* operator->() const { return sub_.get(); }

 private:
  OutputFanout* fanout_;
  std::shared_ptr<Subscriber> sub_;
};

}  // namespace envd::process
