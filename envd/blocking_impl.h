#pragma once
// Template half of envd/blocking.h: the pool class and run_blocking. Included by blocking.h only.
#include <array>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace envd {

inline constexpr std::size_t kWorkClasses = 3;

namespace detail {

// One queued call: the function and the awaiting coroutine's completion handler.
class BlockingJob {
 public:
  virtual ~BlockingJob() = default;
  // On a pool thread: runs the function and keeps its result or exception.
  virtual void run() noexcept = 0;
  // Hands the result (or `failure`, if set) to the awaiting coroutine: posts its completion to
  // the coroutine's executor. Called once, from any thread, while that executor is alive.
  virtual void complete(std::exception_ptr failure) noexcept = 0;
};

}  // namespace detail

struct BlockingPoolStats {
  std::size_t threads = 0;                             // threads started and not yet exited
  std::size_t peak_running = 0;                        // most jobs ever running at once
  std::size_t jobs_run = 0;                            // jobs that ran to their end
  std::array<std::size_t, kWorkClasses> running{};     // per WorkClass, now
  std::array<std::size_t, kWorkClasses> queued{};      // per WorkClass, now
  std::array<std::size_t, kWorkClasses> peak_class{};  // most jobs of a class ever running at once
};

// The threads behind run_blocking (see blocking.h). Jobs wait in one FIFO per WorkClass; a free
// thread takes the next job round-robin across the classes with work, and no class may hold
// more than class_limit() threads, so a backlog of one class (a 10 GiB copy, a huge walk) leaves
// threads for the others: a waiting job of another class starts as soon as one running job ends.
class BlockingPool {
 public:
  static constexpr std::size_t kFloor = 2;
  static constexpr std::size_t kDefaultCap = 8;

  explicit BlockingPool(std::size_t max_threads = kDefaultCap);
  ~BlockingPool();  // shutdown(1 s) if not done yet
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Threads are started on demand, up to max(kFloor, n). Lowering it takes effect as jobs end.
  void set_max_threads(std::size_t n);
  std::size_t max_threads() const;
  // Most threads one class may occupy: the cap minus one per other class (at least 1).
  std::size_t class_limit() const;

  // Stops the pool: jobs still queued complete in their coroutines with an error
  // (boost::asio::error::shut_down), jobs submitted later too; running jobs finish and their
  // threads are joined. A thread still stuck after `grace` (a hung filesystem) is detached and its
  // job's completion is dropped (leaked on purpose: its executor may be gone by then).
  // Call it after the loop stopped and before the io_context is destroyed.
  void shutdown(std::chrono::milliseconds grace);

  BlockingPoolStats stats() const;

  void submit(WorkClass cls, std::unique_ptr<detail::BlockingJob> job);

 private:
  void worker();
  std::unique_ptr<detail::BlockingJob> pick_locked(std::size_t& cls);
  void spawn_locked();

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable exited_;
  std::array<std::deque<std::unique_ptr<detail::BlockingJob>>, kWorkClasses> queues_;
  std::array<std::size_t, kWorkClasses> running_{};
  std::array<std::size_t, kWorkClasses> peak_class_{};
  std::size_t running_total_ = 0;
  std::size_t peak_running_ = 0;
  std::size_t jobs_run_ = 0;
  std::size_t cap_;
  std::size_t threads_ = 0;  // live worker threads
  std::size_t idle_ = 0;     // workers waiting on wake_
  std::size_t wakeups_ = 0;  // notifications sent and not yet consumed
  std::size_t next_class_ = 0;
  bool stopping_ = false;
  bool abandon_completions_ = false;  // shutdown gave up waiting: drop late completions
  std::vector<std::thread> workers_;
};

// The pool run_blocking uses; its cap comes from --blocking-threads.
BlockingPool& default_blocking_pool();

namespace detail {

template <class R, class F, class Handler>
class BlockingJobImpl final : public BlockingJob {
 public:
  BlockingJobImpl(F fn, Handler handler)
      : fn_(std::move(fn)),
        handler_(std::move(handler)),
        // Counts as outstanding work, so the loop does not run out of work while the job runs.
        work_(boost::asio::prefer(boost::asio::get_associated_executor(handler_),
                                  boost::asio::execution::outstanding_work.tracked)) {}

  void run() noexcept override {
    try {
      if constexpr (std::is_void_v<R>) {
        fn_();
        result_.emplace();
      } else {
        result_.emplace(fn_());
      }
    } catch (...) {
      error_ = std::current_exception();
    }
  }

  void complete(std::exception_ptr failure) noexcept override {
    if (failure) error_ = failure;
    auto ex = work_;
    // The function travels back with the result, so what it captured (shared_ptrs to loop-owned
    // objects, say) is released on the loop, not on the pool thread.
    boost::asio::post(ex, [h = std::move(handler_), f = std::move(fn_), e = error_, r = std::move(result_),
                           w = std::move(work_)]() mutable {
      { [[maybe_unused]] F dropped = std::move(f); }
      if (e) r.reset();
      if constexpr (std::is_void_v<R>) {
        std::move(h)(e);
      } else {
        std::move(h)(e, std::move(r));
      }
    });
  }

 private:
  struct Unit {};
  using Stored = std::conditional_t<std::is_void_v<R>, Unit, R>;

  F fn_;
  Handler handler_;
  boost::asio::any_io_executor work_;
  std::optional<Stored> result_;
  std::exception_ptr error_;
};

}  // namespace detail

namespace detail {

// The job is moved to the heap here, outside any coroutine; the coroutine below only receives a
// pointer to it.
template <class R, class F>
struct PendingJob {
  BlockingPool* pool;
  WorkClass cls;
  std::unique_ptr<F> fn;
};

template <class R, class F>
boost::asio::awaitable<R> await_job(PendingJob<R, F> pending) {
  namespace asio = boost::asio;
  // The coroutine stays suspended until the job has run, even if the call is cancelled meanwhile:
  // `fn` may refer to the coroutine's locals, so resuming early would leave it with dangling
  // references. Jobs stop early by polling their request's CancelToken instead.
  auto init = [&pending](auto handler) {
    using H = decltype(handler);
    pending.pool->submit(pending.cls,
                         std::make_unique<BlockingJobImpl<R, F, H>>(std::move(*pending.fn), std::move(handler)));
  };
  if constexpr (std::is_void_v<R>) {
    co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::exception_ptr)>(init, asio::use_awaitable);
  } else {
    auto r = co_await asio::async_initiate<const asio::use_awaitable_t<>, void(std::exception_ptr, std::optional<R>)>(
        init, asio::use_awaitable);
    co_return std::move(*r);
  }
}

}  // namespace detail

template <class F>
boost::asio::awaitable<std::invoke_result_t<std::decay_t<F>&>> run_blocking(BlockingPool& pool, WorkClass cls, F&& fn) {
  using Fn = std::decay_t<F>;
  static_assert(std::is_lvalue_reference_v<F> || std::is_trivially_destructible_v<Fn>,
                "run_blocking: name the job first (auto job = [..] {..}; co_await run_blocking(cls, job);). "
                "g++ 12 destroys a lambda temporary inside a co_await expression twice, which double-frees "
                "what it captured by value (std::string, shared_ptr...). See envd/blocking.h.");
  using R = std::invoke_result_t<Fn&>;
  return detail::await_job<R, Fn>(detail::PendingJob<R, Fn>{&pool, cls, std::make_unique<Fn>(std::move(fn))});
}

template <class F>
boost::asio::awaitable<std::invoke_result_t<std::decay_t<F>&>> run_blocking(WorkClass cls, F&& fn) {
  return run_blocking(default_blocking_pool(), cls, std::forward<F>(fn));
}

}  // namespace envd
