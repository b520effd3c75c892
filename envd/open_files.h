#pragma once
// The open-files limit. envd raises its soft RLIMIT_NOFILE to the hard one at start (every
// connection and every process pipe is an fd; systemd starts services with 1024), and the processes
// it starts get back the limit envd was started with, as under Go's envd (its runtime restores the
// original soft limit in exec'd children): programs that use select() fail with fds above 1024.
#include <sys/resource.h>
#include <cerrno>

namespace envd::open_files {

inline struct rlimit original {};
inline bool raised = false;

// Returns 0 when the soft limit was raised (or already at the hard one), else an errno value.
inline int raise_to_hard() {
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return errno;
  if (rl.rlim_cur >= rl.rlim_max) return 0;
  original = rl;
  rl.rlim_cur = rl.rlim_max;
  if (::setrlimit(RLIMIT_NOFILE, &rl) != 0) return errno;
  raised = true;
  return 0;
}

// In a new child before exec (async-signal-safe).
inline void restore_in_child() {
  if (raised) ::setrlimit(RLIMIT_NOFILE, &original);
}

}  // namespace envd::open_files
