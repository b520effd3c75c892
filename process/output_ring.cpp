#include "process/output_ring.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace envd::process {

namespace {
using Blocks = std::deque<std::shared_ptr<char[]>>;

void read_blocks(const Blocks& blocks, std::uint64_t first_block, std::size_t block, std::uint64_t pos, void* dst,
                 std::size_t n) {
  auto* out = static_cast<char*>(dst);
  while (n > 0) {
    std::uint64_t bi = pos / block;
    std::size_t off = static_cast<std::size_t>(pos % block);
    std::size_t k = std::min(n, block - off);
    assert(bi >= first_block && bi - first_block < blocks.size());
    std::memcpy(out, blocks[static_cast<std::size_t>(bi - first_block)].get() + off, k);
    out += k;
    pos += k;
    n -= k;
  }
}
}  // namespace

OutputRing::OutputRing(std::size_t capacity, std::shared_ptr<RetentionBudget> budget)
    : capacity_(std::max(capacity, kMinCapacity)),
      // Small rings get small records, so that one record never has to evict the whole ring.
      max_record_(std::min(kMaxRecord, capacity_ / 2 - kHeader)),
      block_(std::min<std::size_t>(64 * 1024, capacity_)),
      budget_(std::move(budget)) {
  if (budget_) {
    charged_ = capacity_;
    budget_->used += charged_;
  }
}

OutputRing::~OutputRing() {
  if (budget_) budget_->used -= charged_;
}

void OutputRing::settle() {
  if (!budget_) return;
  budget_->used -= charged_;
  charged_ = std::min(allocated(), capacity_);
  budget_->used += charged_;
}

void OutputRing::append(OutputStream s, const char* data, std::size_t n) {
  const std::size_t i = idx(s);
  // More than the ring can hold: its front would be evicted by its own tail at once; skip it.
  if (n > capacity_) {
    std::size_t skip = n - capacity_;
    written_[i] += skip;
    dropped_end_[i] = std::max(dropped_end_[i], written_[i]);
    data += skip;
    n -= skip;
  }
  while (n > 0) {
    std::size_t k = std::min(n, max_record_);
    append_record(i, data, k);
    data += k;
    n -= k;
  }
}

void OutputRing::append_record(std::size_t i, const char* data, std::size_t n) {
  Header last{};
  bool merge = false;
  if (head_ > tail_) {
    read_blocks(blocks_, first_block_, block_, last_, &last, kHeader);
    merge = last.stream == i && last.len + n <= max_record_;
  }
  for (;;) {
    std::size_t need = merge ? n : kHeader + n;
    if (used() + need <= capacity_) break;
    if (merge && tail_ == last_) merge = false;  // the record to extend is the one to evict
    evict_front();
  }
  if (merge) {
    last.len += static_cast<std::uint32_t>(n);
    write_at(last_, &last, kHeader);
    write_at(head_, data, n);
    head_ += n;
  } else {
    Header h{};
    h.stream = static_cast<std::uint8_t>(i);
    h.len = static_cast<std::uint32_t>(n);
    h.offset = written_[i];
    last_ = head_;
    write_at(head_, &h, kHeader);
    write_at(head_ + kHeader, data, n);
    head_ += kHeader + n;
  }
  written_[i] += n;
}

void OutputRing::write_at(std::uint64_t pos, const void* src, std::size_t n) {
  const auto* in = static_cast<const char*>(src);
  while (n > 0) {
    std::uint64_t bi = pos / block_;
    std::size_t off = static_cast<std::size_t>(pos % block_);
    if (blocks_.empty()) first_block_ = bi;
    while (bi - first_block_ >= blocks_.size()) blocks_.emplace_back(new char[block_]);
    std::size_t k = std::min(n, block_ - off);
    std::memcpy(blocks_[static_cast<std::size_t>(bi - first_block_)].get() + off, in, k);
    in += k;
    pos += k;
    n -= k;
  }
}

void OutputRing::evict_front() {
  assert(head_ > tail_);
  Header h{};
  read_blocks(blocks_, first_block_, block_, tail_, &h, kHeader);
  dropped_end_[h.stream] = std::max(dropped_end_[h.stream], h.offset + h.len);
  tail_ += kHeader + h.len;
  free_blocks();
}

void OutputRing::free_blocks() {
  while (!blocks_.empty() && (first_block_ + 1) * block_ <= tail_) {
    blocks_.pop_front();
    ++first_block_;
  }
}

OutputRing::Replay OutputRing::replay(const StreamOffsets& from) const {
  Replay r;
  r.blocks_ = blocks_;
  r.block_ = block_;
  r.first_block_ = first_block_;
  r.pos_ = tail_;
  r.end_ = head_;
  for (std::size_t i = 0; i < from.size(); ++i) {
    r.from_[i] = std::max(from[i], dropped_end_[i]);
    r.lost_[i] = dropped_end_[i] > from[i] ? dropped_end_[i] - from[i] : 0;
  }
  return r;
}

bool OutputRing::Replay::next(OutputStream& stream, std::uint64_t& offset, std::string& out, std::size_t max) {
  out.clear();
  bool have = false;
  std::size_t si = 0;
  while (pos_ < end_ && out.size() < max) {
    Header h{};
    read_blocks(blocks_, first_block_, block_, pos_, &h, kHeader);
    const std::uint64_t rec_end = h.offset + h.len;
    const std::uint64_t start = std::max<std::uint64_t>(h.offset, from_[h.stream]);
    if (start >= rec_end) {
      pos_ += kHeader + h.len;
      continue;
    }
    if (have && (h.stream != si || start != offset + out.size())) break;
    if (!have) {
      have = true;
      si = h.stream;
      stream = static_cast<OutputStream>(h.stream);
      offset = start;
    }
    std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(rec_end - start, max - out.size()));
    std::size_t old = out.size();
    out.resize(old + take);
    read_blocks(blocks_, first_block_, block_, pos_ + kHeader + (start - h.offset), out.data() + old, take);
    from_[h.stream] = start + take;
    if (start + take == rec_end) pos_ += kHeader + h.len;
  }
  return have;
}

}  // namespace envd::process
