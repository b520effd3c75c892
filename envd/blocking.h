#pragma once
// Blocking work off the event loop (DESIGN §5.1). Every syscall on a client-supplied path (stat,
// open, read, write, xattrs, walks, copies, fsync) runs on a small pool of threads, because an
// NFS, FUSE or frozen filesystem can block any of them forever; the awaiting coroutine resumes on
// its own executor (the loop) with the job's result.
//
// API (implemented in blocking.cpp; keep it stable, services code against it):
//   auto job = [path, token] { struct stat st; return ::lstat(path.c_str(), &st) == 0 ? 0 : errno; };
//   int err = co_await envd::run_blocking(envd::WorkClass::meta, job);  // moves from `job`
// - Name the job before the co_await: g++ 12 destroys a lambda temporary that sits inside a
//   co_await expression twice (a by-value capture such as a std::string is freed twice; found
//   with ASan). run_blocking therefore takes a named job (an lvalue, which it moves from) and
//   refuses, at compile time, temporaries unless they are trivially destructible ([&] lambdas).
// - Per-class queues, so a flood of one class (e.g. bulk copies) cannot starve another (stat).
// - A floor of 2 threads and a cap (8 by default), threads started on demand.
// - `fn` runs on a pool thread: it must not touch loop-owned state. Its result type must be
//   move-constructible. Jobs should not throw; an exception is rethrown in the coroutine.
// - Cancellation: a job polls a CancelToken (set on the loop when its request is cancelled:
//   client gone, deadline, shutdown) between chunks of work and stops early.
#include <atomic>
#include <boost/asio/awaitable.hpp>
#include <memory>
#include <type_traits>

namespace envd {

enum class WorkClass {
  meta,  // stat, lstat, open, mkdir, rename, xattrs: short calls on one path
  data,  // reads and writes of file contents, fsync
  walk,  // directory walks, recursive removes and copies, large encodings
};

// Set on the loop, read from pool threads.
using CancelToken = std::shared_ptr<const std::atomic<bool>>;

inline bool is_cancelled(const CancelToken& t) { return t && t->load(std::memory_order_relaxed); }

template <class F>
boost::asio::awaitable<std::invoke_result_t<std::decay_t<F>&>> run_blocking(WorkClass cls, F&& fn);

}  // namespace envd

#include "envd/blocking_impl.h"  // NOLINT: template definition (written with the pool)
