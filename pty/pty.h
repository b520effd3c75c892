#pragma once
// Pseudo-terminal helpers for PTY-backed processes (contract §4.11): allocate a master/slave pair
// with an initial window size, make the slave the controlling terminal of a new session in the
// child, and resize (TIOCSWINSZ, which makes the kernel send SIGWINCH to the foreground group).
#include <cstdint>
#include <string>

namespace envd::pty {

struct Pair {
  int master = -1;    // O_NONBLOCK | O_CLOEXEC: envd's end, read and written by the event loop
  int slave = -1;     // O_CLOEXEC (blocking): handed to the child as fds 0, 1 and 2
  std::string error;  // non-empty on failure; both fds are then -1
  bool ok() const { return error.empty(); }
};

// Opens a new PTY pair. A zero size gives a 0x0 window, as envd does.
Pair open_pair(std::uint16_t cols, std::uint16_t rows);

// Sets the window size through the master. Returns 0 or an errno value.
int resize(int master_fd, std::uint16_t cols, std::uint16_t rows);

// Reads the window size (for tests and diagnostics). Returns 0 or an errno value.
int window_size(int fd, std::uint16_t& cols, std::uint16_t& rows);

// In the child after fork, before exec: new session, `slave` as controlling terminal.
// Async-signal-safe (raw syscalls only). Returns 0 or an errno value.
int make_controlling_tty_in_child(int slave);

}  // namespace envd::pty
