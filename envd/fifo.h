#pragma once
// A FIFO queue on one vector. std::deque allocates ~600 bytes as soon as it is constructed, and
// envd keeps one queue per open stream (HTTP/2 response data, process output per subscriber), so
// an idle stream should cost nothing here.
#include <cstddef>
#include <utility>
#include <vector>

namespace envd {

template <typename T>
class Fifo {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  void push_back(T v) { items_.push_back(std::move(v)); }
  T& front() { return items_[head_]; }
  void pop_front() {
    items_[head_++] = T();
    if (head_ == items_.size()) {
      clear();
    } else if (head_ >= 32 && head_ * 2 >= items_.size()) {
      // A queue that never empties: reclaim the consumed front now and then (amortised O(1)).
      items_.erase(items_.begin(), items_.begin() + static_cast<std::ptrdiff_t>(head_));
      head_ = 0;
    }
  }
  // Removes and returns the front element.
  T take_front() {
    T v = std::move(items_[head_]);
    pop_front();
    return v;
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace envd
