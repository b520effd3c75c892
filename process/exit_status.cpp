#include "process/exit_status.h"

#include <sys/wait.h>

#include <array>
#include <string_view>

namespace envd::process {

std::string go_signal_name(int sig) {
  // Go's runtime table for linux (syscall/zerrors_linux_*.go, signals[]).
  static constexpr std::array<std::string_view, 32> kNames = {
      "",
      "hangup",
      "interrupt",
      "quit",
      "illegal instruction",
      "trace/breakpoint trap",
      "aborted",
      "bus error",
      "floating point exception",
      "killed",
      "user defined signal 1",
      "segmentation fault",
      "user defined signal 2",
      "broken pipe",
      "alarm clock",
      "terminated",
      "stack fault",
      "child exited",
      "continued",
      "stopped (signal)",
      "stopped",
      "stopped (tty input)",
      "stopped (tty output)",
      "urgent I/O condition",
      "CPU time limit exceeded",
      "file size limit exceeded",
      "virtual timer expired",
      "profiling timer expired",
      "window changed",
      "I/O possible",
      "power failure",
      "bad system call",
  };
  if (sig > 0 && sig < static_cast<int>(kNames.size())) return std::string(kNames[sig]);
  return "signal " + std::to_string(sig);
}

ExitInfo describe_wait_status(int wstatus) {
  ExitInfo info;
  if (WIFEXITED(wstatus)) {
    info.exited = true;
    info.exit_code = WEXITSTATUS(wstatus);
    info.status = "exit status " + std::to_string(info.exit_code);
  } else if (WIFSIGNALED(wstatus)) {
    info.exit_code = -1;
    info.status = "signal: " + go_signal_name(WTERMSIG(wstatus));
    if (WCOREDUMP(wstatus)) info.status += " (core dumped)";
  } else {
    info.exit_code = -1;
    info.status = "unknown wait status " + std::to_string(wstatus);
  }
  if (!(info.exited && info.exit_code == 0)) info.error = info.status;
  return info;
}

}  // namespace envd::process
