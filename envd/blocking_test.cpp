#include "envd/blocking.h"

#include <doctest/doctest.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using envd::BlockingPool;
using envd::run_blocking;
using envd::WorkClass;

namespace {

// A door pool jobs wait at until the test opens it (no sleeps, no timing).
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock l(mu);
    cv.wait(l, [&] { return open; });
  }
  void release() {
    std::lock_guard l(mu);
    open = true;
    cv.notify_all();
  }
};

// Records the order in which jobs start.
struct StartLog {
  std::mutex mu;
  std::vector<std::string> order;
  void add(std::string s) {
    std::lock_guard l(mu);
    order.push_back(std::move(s));
  }
};

void run_loop(asio::io_context& io, asio::awaitable<void> a) {
  std::exception_ptr failure;
  asio::co_spawn(io, std::move(a), [&](std::exception_ptr e) { failure = e; });
  io.run();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

TEST_CASE("blocking: the job runs on a pool thread and the coroutine resumes on the loop") {
  asio::io_context io;
  BlockingPool pool(4);
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id job_thread, resumed_thread;
  int value = 0;
  run_loop(io, [&]() -> asio::awaitable<void> {
    value = co_await run_blocking(pool, WorkClass::meta, [&] {
      job_thread = std::this_thread::get_id();
      return 42;
    });
    resumed_thread = std::this_thread::get_id();
  }());
  CHECK(value == 42);
  CHECK(job_thread != loop_thread);
  CHECK(resumed_thread == loop_thread);
}

TEST_CASE("blocking: void jobs and move-only results") {
  asio::io_context io;
  BlockingPool pool;
  bool ran = false;
  std::unique_ptr<int> p;
  run_loop(io, [&]() -> asio::awaitable<void> {
    co_await run_blocking(pool, WorkClass::data, [&] { ran = true; });
    p = co_await run_blocking(pool, WorkClass::walk, [] { return std::make_unique<int>(7); });
  }());
  CHECK(ran);
  REQUIRE(p);
  CHECK(*p == 7);
}

TEST_CASE("blocking: a named job's by-value captures travel to the pool and back once") {
  // The g++ 12 double destruction of lambda temporaries in co_await expressions (blocking.h):
  // heap-allocated captures must be freed exactly once (ASan checks).
  asio::io_context io;
  BlockingPool pool;
  std::string path(100, 'p');
  std::size_t n = 0;
  run_loop(io, [&]() -> asio::awaitable<void> {
    auto job = [path, copy = std::make_shared<std::string>(path)] { return path.size() + copy->size(); };
    n = co_await run_blocking(pool, WorkClass::meta, job);
  }());
  CHECK(n == 200);
}

TEST_CASE("blocking: an exception in the job is rethrown in the coroutine") {
  asio::io_context io;
  BlockingPool pool;
  std::string caught;
  run_loop(io, [&]() -> asio::awaitable<void> {
    try {
      co_await run_blocking(pool, WorkClass::meta, []() -> int { throw std::runtime_error("boom"); });
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
  }());
  CHECK(caught == "boom");
}

TEST_CASE("blocking: many concurrent jobs all complete, within the cap") {
  asio::io_context io;
  BlockingPool pool(3);
  std::atomic<int> now{0}, peak{0};
  int done = 0;
  constexpr int kJobs = 200;
  for (int i = 0; i < kJobs; ++i) {
    auto cls = static_cast<WorkClass>(i % 3);
    asio::co_spawn(
        io,
        [&, cls, i]() -> asio::awaitable<void> {
          int r = co_await run_blocking(pool, cls, [&, i] {
            int n = ++now;
            int p = peak.load();
            while (n > p && !peak.compare_exchange_weak(p, n)) {
            }
            std::this_thread::yield();
            --now;
            return i;
          });
          CHECK(r == i);
          ++done;
        },
        asio::detached);
  }
  io.run();
  CHECK(done == kJobs);
  CHECK(peak.load() <= 3);
  auto s = pool.stats();
  CHECK(s.threads <= 3);
  CHECK(s.threads >= BlockingPool::kFloor);
  CHECK(s.peak_running <= 3);
}

TEST_CASE("blocking: threads start on demand up to the cap; the cap is a flag-sized bound") {
  asio::io_context io;
  BlockingPool pool(5);
  CHECK(pool.stats().threads == 0);
  CHECK(pool.class_limit() == 3);
  // Hold 3 meta jobs at a gate: a class never gets more than class_limit() threads.
  auto gate = std::make_shared<Gate>();
  std::atomic<int> started{0};
  int done = 0;
  for (int i = 0; i < 6; ++i) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          auto job = [&, gate] {
            ++started;
            gate->wait();
          };
          co_await run_blocking(pool, WorkClass::meta, job);
          ++done;
        },
        asio::detached);
  }
  // Two data jobs still get threads while meta is at its limit.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        co_await run_blocking(pool, WorkClass::data, [] {});
        co_await run_blocking(pool, WorkClass::data, [] {});
        asio::steady_timer t(io);
        while (started < 3) {
          t.expires_after(std::chrono::milliseconds(1));
          co_await t.async_wait(asio::use_awaitable);
        }
        auto s = pool.stats();
        CHECK(s.running[0] == 3);  // meta: at its limit, the rest queued
        CHECK(s.queued[0] == 3);
        CHECK(s.threads <= 5);
        gate->release();
      },
      asio::detached);
  io.run();
  CHECK(done == 6);
  auto s = pool.stats();
  CHECK(s.peak_class[0] == 3);
  CHECK(s.threads <= 5);
  CHECK(s.peak_running <= 5);
}

TEST_CASE("blocking: a walk backlog does not starve a meta job") {
  asio::io_context io;
  BlockingPool pool(2);  // the floor: one thread per class at most
  auto walk_gate = std::make_shared<Gate>();
  auto log = std::make_shared<StartLog>();
  bool meta_done = false;
  std::size_t walks_started_when_meta_done = 0;
  // 20 walk jobs that block until the meta job below has finished.
  for (int i = 0; i < 20; ++i) {
    asio::co_spawn(
        io,
        [&, i]() -> asio::awaitable<void> {
          auto job = [log, walk_gate, i] {
            log->add("walk" + std::to_string(i));
            walk_gate->wait();
          };
          co_await run_blocking(pool, WorkClass::walk, job);
        },
        asio::detached);
  }
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto job = [log] { log->add("meta"); };
        co_await run_blocking(pool, WorkClass::meta, job);
        meta_done = true;
        std::lock_guard l(log->mu);
        walks_started_when_meta_done = log->order.size() - 1;
        walk_gate->release();
      },
      asio::detached);
  io.run();
  CHECK(meta_done);
  // Every walk job is stuck, yet meta ran: walk never held both threads.
  CHECK(walks_started_when_meta_done <= 1);
  CHECK(pool.stats().peak_class[2] == 1);
}

TEST_CASE("blocking: a queued meta job starts right after the running job, ahead of the walk backlog") {
  asio::io_context io;
  BlockingPool pool(2);
  auto data_gate = std::make_shared<Gate>();
  auto first_walk_gate = std::make_shared<Gate>();
  auto log = std::make_shared<StartLog>();
  std::atomic<bool> data_running{false}, walk_running{false};
  int finished = 0;
  auto spawn = [&](WorkClass cls, std::string name, std::function<void()> fn) {
    asio::co_spawn(
        io,
        [&, cls, name, fn]() -> asio::awaitable<void> {
          auto job = [log, name, fn] {
            log->add(name);
            fn();
          };
          co_await run_blocking(pool, cls, job);
          ++finished;
        },
        asio::detached);
  };
  // Thread 1: a data job held until the end. Thread 2: the first walk, held until the meta job
  // is queued behind four more walks.
  spawn(WorkClass::data, "data", [&, data_gate] {
    data_running = true;
    data_gate->wait();
  });
  spawn(WorkClass::walk, "walk0", [&, first_walk_gate] {
    walk_running = true;
    first_walk_gate->wait();
  });
  for (int i = 1; i < 5; ++i) spawn(WorkClass::walk, "walk" + std::to_string(i), [] {});
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // Wait (on the loop) until both threads are busy, then queue meta and let walk0 finish.
        asio::steady_timer t(io);
        while (!data_running || !walk_running) {
          t.expires_after(std::chrono::milliseconds(1));
          co_await t.async_wait(asio::use_awaitable);
        }
        spawn(WorkClass::meta, "meta", [&, data_gate] { data_gate->release(); });
        first_walk_gate->release();
      },
      asio::detached);
  io.run();
  CHECK(finished == 7);
  std::lock_guard l(log->mu);
  REQUIRE(log->order.size() == 7);
  // data and walk0 first (in either order), then meta: one job's time, not five.
  CHECK(log->order[2] == "meta");
}

TEST_CASE("blocking: shutdown completes queued jobs with an error and joins the threads") {
  asio::io_context io;
  auto pool = std::make_unique<BlockingPool>(2);
  auto gate = std::make_shared<Gate>();
  std::atomic<bool> running{false};
  int errors = 0, ok = 0;
  // Two jobs occupy both threads (one per class), a third waits in the queue.
  for (auto cls : {WorkClass::meta, WorkClass::data, WorkClass::meta}) {
    asio::co_spawn(
        io,
        [&, cls]() -> asio::awaitable<void> {
          try {
            auto job = [&, gate] {
              running = true;
              gate->wait();
            };
            co_await run_blocking(*pool, cls, job);
            ++ok;
          } catch (const boost::system::system_error& e) {
            CHECK(e.code() == asio::error::shut_down);
            ++errors;
          }
        },
        asio::detached);
  }
  io.poll();
  while (pool->stats().running[0] + pool->stats().running[1] < 2) std::this_thread::yield();
  // The gate opens only once shutdown() has taken the queued job off the queue: opened earlier, a
  // freed thread could pick that job up and run it.
  std::thread opener([gate, &pool] {
    for (;;) {
      auto st = pool->stats();
      std::size_t queued = 0;
      for (auto q : st.queued) queued += q;
      if (queued == 0) break;
      std::this_thread::yield();
    }
    gate->release();
  });
  pool->shutdown(std::chrono::seconds(10));
  opener.join();
  CHECK(pool->stats().threads == 0);
  // Jobs submitted after shutdown fail at once.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        try {
          co_await run_blocking(*pool, WorkClass::walk, [] {});
          ++ok;
        } catch (const boost::system::system_error&) {
          ++errors;
        }
      },
      asio::detached);
  io.run();
  CHECK(ok == 2);
  CHECK(errors == 2);
  pool.reset();
}

TEST_CASE("blocking: a loop destroyed with a job's completion pending frees the coroutine") {
  // The loop stops before the completion runs; destroying the io_context destroys the pending
  // handler and the coroutine frame with it (ASan checks nothing leaks).
  BlockingPool pool(2);
  {
    asio::io_context io;
    auto gate = std::make_shared<Gate>();
    auto big = std::make_shared<std::string>(1000, 'x');
    asio::co_spawn(
        io,
        [&pool, gate, big]() -> asio::awaitable<void> {
          auto job = [gate] { gate->wait(); };
          co_await run_blocking(pool, WorkClass::meta, job);
          FAIL("resumed after the loop stopped");
        },
        asio::detached);
    io.poll();
    gate->release();
    pool.shutdown(std::chrono::seconds(10));  // the job has completed: its handler sits in io
  }
  CHECK(pool.stats().threads == 0);
}
