#pragma once
// Opt-in output retention (issue 13 part 1): the last N bytes a process wrote, across its output
// streams in the order they were read, so that a client that lost its connection can reattach with
// the offsets it has seen and get exactly the bytes after them (Connect replay_from).
//
// Layout: records (a 16-byte header: stream, length, offset of the first byte in its stream; then
// the bytes) laid end to end in a FIFO of fixed-size blocks. Blocks are allocated as output arrives
// and freed as the oldest records are evicted, so a ring costs what it holds, never its capacity up
// front. Headers count against the capacity: the ring's memory is bounded by capacity + one block.
// A snapshot for a replay shares the blocks (reference-counted), so eviction by new output during a
// slow replay never pulls bytes from under it.
#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>

#include "process/output_fanout.h"

namespace envd::process {

using StreamOffsets = std::array<std::uint64_t, 3>;  // indexed by OutputStream

// The bytes of retention in use across all processes (--output-retention-total-bytes). A live
// process's ring is charged its capacity; an ended one what it holds.
struct RetentionBudget {
  std::size_t total = 0;
  std::size_t used = 0;
};

class OutputRing {
 public:
  static constexpr std::size_t kHeader = 16;
  static constexpr std::size_t kMaxRecord = 16 * 1024;  // bytes per record: eviction granularity
  static constexpr std::size_t kMinCapacity = 4096;

  // `capacity` is raised to kMinCapacity. `budget` (may be null) is charged `capacity` until settle().
  OutputRing(std::size_t capacity, std::shared_ptr<RetentionBudget> budget = nullptr);
  ~OutputRing();
  OutputRing(const OutputRing&) = delete;
  OutputRing& operator=(const OutputRing&) = delete;

  // `n` more bytes of `s`, at offset written(s).
  void append(OutputStream s, const char* data, std::size_t n);

  std::uint64_t written(OutputStream s) const { return written_[idx(s)]; }
  // Offset of the oldest byte of `s` still held (written(s) when none is).
  std::uint64_t first_retained(OutputStream s) const { return dropped_end_[idx(s)]; }
  StreamOffsets written() const { return written_; }
  std::size_t capacity() const { return capacity_; }
  std::size_t used() const { return static_cast<std::size_t>(head_ - tail_); }  // headers included
  std::size_t allocated() const { return blocks_.size() * block_; }
  // The process ended: no more output. The budget is charged what the ring holds from now on.
  void settle();
  std::size_t charged() const { return charged_; }

  class Replay;
  // The retained bytes after `from` (per stream), as of now. `from` must be ≤ written() for every
  // stream (checked by the caller).
  Replay replay(const StreamOffsets& from) const;

 private:
  friend class Replay;
  struct Header {
    std::uint8_t stream;
    std::uint8_t pad[3];
    std::uint32_t len;
    std::uint64_t offset;
  };
  static_assert(sizeof(Header) == kHeader);
  static std::size_t idx(OutputStream s) { return static_cast<std::size_t>(s); }

  void append_record(std::size_t i, const char* data, std::size_t n);
  void write_at(std::uint64_t pos, const void* src, std::size_t n);
  void evict_front();
  void free_blocks();

  std::size_t capacity_;
  std::size_t max_record_;
  std::size_t block_;
  std::deque<std::shared_ptr<char[]>> blocks_;
  std::uint64_t first_block_ = 0;  // index (position / block_) of blocks_[0]
  std::uint64_t tail_ = 0;         // position of the oldest record's header
  std::uint64_t head_ = 0;         // position after the newest record
  std::uint64_t last_ = 0;         // position of the newest record's header (valid when head_ > tail_)
  StreamOffsets written_{};
  StreamOffsets dropped_end_{};
  std::shared_ptr<RetentionBudget> budget_;
  std::size_t charged_ = 0;
};

// A snapshot walked front to back: the lost counts, then runs of one stream at a time.
class OutputRing::Replay {
 public:
  // Per stream: bytes after `from` that are no longer held.
  const StreamOffsets& lost() const { return lost_; }
  bool any_lost() const { return lost_[0] || lost_[1] || lost_[2]; }
  // The next run of consecutive bytes of one stream (up to `max` bytes; `out` is replaced).
  // False when everything was replayed.
  bool next(OutputStream& stream, std::uint64_t& offset, std::string& out, std::size_t max);

 private:
  friend class OutputRing;

  std::deque<std::shared_ptr<char[]>> blocks_;
  std::size_t block_ = 0;
  std::uint64_t first_block_ = 0;
  std::uint64_t pos_ = 0;
  std::uint64_t end_ = 0;
  StreamOffsets from_{};  // per stream: the next byte to send
  StreamOffsets lost_{};
};

}  // namespace envd::process
