#include "envd/blocking.h"

#include <pthread.h>

#include <algorithm>
#include <boost/asio/error.hpp>
#include <boost/system/system_error.hpp>

namespace envd {

namespace {

std::exception_ptr shut_down_error() {
  return std::make_exception_ptr(boost::system::system_error(boost::asio::error::shut_down, "blocking pool shut down"));
}

}  // namespace

BlockingPool::BlockingPool(std::size_t max_threads) : cap_(std::max(kFloor, max_threads)) {}

BlockingPool::~BlockingPool() { shutdown(std::chrono::seconds(1)); }

void BlockingPool::set_max_threads(std::size_t n) {
  std::lock_guard lock(mu_);
  cap_ = std::max(kFloor, n);
}

std::size_t BlockingPool::max_threads() const {
  std::lock_guard lock(mu_);
  return cap_;
}

std::size_t BlockingPool::class_limit() const {
  std::lock_guard lock(mu_);
  return cap_ > kWorkClasses ? cap_ - (kWorkClasses - 1) : 1;
}

BlockingPoolStats BlockingPool::stats() const {
  std::lock_guard lock(mu_);
  BlockingPoolStats s;
  s.threads = threads_;
  s.peak_running = peak_running_;
  s.jobs_run = jobs_run_;
  s.running = running_;
  s.peak_class = peak_class_;
  for (std::size_t c = 0; c < kWorkClasses; ++c) s.queued[c] = queues_[c].size();
  return s;
}

void BlockingPool::submit(WorkClass cls, std::unique_ptr<detail::BlockingJob> job) {
  std::unique_lock lock(mu_);
  if (stopping_) {
    lock.unlock();
    job->complete(shut_down_error());
    return;
  }
  queues_[static_cast<std::size_t>(cls)].push_back(std::move(job));
  while (threads_ < kFloor) spawn_locked();
  if (idle_ > wakeups_) {
    ++wakeups_;
    wake_.notify_one();
  } else if (threads_ < cap_) {
    spawn_locked();
  }
  // Otherwise every thread is busy: the job starts when one of them finishes its job.
}

void BlockingPool::spawn_locked() {
  ++threads_;
  workers_.emplace_back([this] { worker(); });
}

// The next job a free thread should run, or nullptr: round-robin over the classes that have work
// and are under their limit, starting after the class served last.
std::unique_ptr<detail::BlockingJob> BlockingPool::pick_locked(std::size_t& cls) {
  if (running_total_ >= cap_) return nullptr;
  const std::size_t limit = cap_ > kWorkClasses ? cap_ - (kWorkClasses - 1) : 1;
  for (std::size_t i = 0; i < kWorkClasses; ++i) {
    std::size_t c = (next_class_ + i) % kWorkClasses;
    if (queues_[c].empty() || running_[c] >= limit) continue;
    auto job = std::move(queues_[c].front());
    queues_[c].pop_front();
    next_class_ = (c + 1) % kWorkClasses;
    cls = c;
    return job;
  }
  return nullptr;
}

void BlockingPool::worker() {
  pthread_setname_np(pthread_self(), "envd-blocking");
  std::unique_lock lock(mu_);
  for (;;) {
    std::size_t cls = 0;
    if (auto job = pick_locked(cls)) {
      ++running_[cls];
      ++running_total_;
      peak_running_ = std::max(peak_running_, running_total_);
      peak_class_[cls] = std::max(peak_class_[cls], running_[cls]);
      lock.unlock();
      job->run();
      lock.lock();
      --running_[cls];
      --running_total_;
      ++jobs_run_;
      if (abandon_completions_) {
        // shutdown() stopped waiting for this thread: the executor the job would resume on may be
        // gone, so neither complete nor destroy it (destroying touches the coroutine's frame).
        (void)job.release();
        break;
      }
      job->complete(nullptr);  // posts to the loop; safe under our lock (the loop never holds its
                               // own lock while taking ours)
      job.reset();
      // A finished job may have freed a slot for a class that was at its limit.
      continue;
    }
    if (stopping_) break;
    ++idle_;
    wake_.wait(lock);
    --idle_;
    if (wakeups_ > 0) --wakeups_;
  }
  --threads_;
  exited_.notify_all();
}

void BlockingPool::shutdown(std::chrono::milliseconds grace) {
  std::vector<std::unique_ptr<detail::BlockingJob>> queued;
  std::vector<std::thread> workers;
  {
    std::unique_lock lock(mu_);
    if (stopping_ && workers_.empty()) return;
    stopping_ = true;
    for (auto& q : queues_) {
      for (auto& j : q) queued.push_back(std::move(j));
      q.clear();
    }
    wake_.notify_all();
    if (!exited_.wait_for(lock, grace, [this] { return threads_ == 0; })) abandon_completions_ = true;
    workers = std::move(workers_);
    workers_.clear();
  }
  for (auto& j : queued) j->complete(shut_down_error());
  queued.clear();
  for (auto& t : workers) {
    // A thread is joinable until joined; after the wait above it has either exited its loop
    // (join returns at once) or is stuck in a job (detach: the process is about to exit).
    std::unique_lock lock(mu_);
    bool stuck = abandon_completions_ && threads_ > 0;
    lock.unlock();
    if (stuck) {
      t.detach();
    } else {
      t.join();
    }
  }
}

BlockingPool& default_blocking_pool() {
  static BlockingPool pool;
  return pool;
}

}  // namespace envd
