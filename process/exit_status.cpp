#include "process/exit_status.h"

#include <signal.h>
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

std::string signal_abbrev(int sig) {
  static constexpr std::array<std::string_view, 32> kNames = {
      "",          "SIGHUP",  "SIGINT",    "SIGQUIT", "SIGILL",   "SIGTRAP", "SIGABRT", "SIGBUS",
      "SIGFPE",    "SIGKILL", "SIGUSR1",   "SIGSEGV", "SIGUSR2",  "SIGPIPE", "SIGALRM", "SIGTERM",
      "SIGSTKFLT", "SIGCHLD", "SIGCONT",   "SIGSTOP", "SIGTSTP",  "SIGTTIN", "SIGTTOU", "SIGURG",
      "SIGXCPU",   "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO",   "SIGPWR",  "SIGSYS",
  };
  if (sig > 0 && sig < static_cast<int>(kNames.size())) return std::string(kNames[sig]);
  if (sig >= SIGRTMIN && sig <= SIGRTMAX)
    return sig == SIGRTMIN ? "SIGRTMIN" : "SIGRTMIN+" + std::to_string(sig - SIGRTMIN);
  return "SIG" + std::to_string(sig);
}

ExitCause derive_exit_cause(int wstatus, const ExitContext& ctx) {
  ExitCause c;
  c.oom_kills = ctx.oom_kills;
  c.pids_max_hits = ctx.pids_max_hits;
  bool envd_sent = false;
  if (WIFSIGNALED(wstatus)) {
    c.kind = ExitCause::Kind::signaled;
    c.exit_code = -1;
    c.signal = WTERMSIG(wstatus);
    c.core_dumped = WCOREDUMP(wstatus);
    if (ctx.start_deadline && c.signal == SIGKILL) {
      c.sent_by = ExitCause::Sender::start_deadline;
    } else if (c.signal < 64 && (ctx.sent_signals >> c.signal) & 1u) {
      c.sent_by = ExitCause::Sender::send_signal;
    } else {
      c.sent_by = ExitCause::Sender::other;
    }
    envd_sent = c.sent_by != ExitCause::Sender::other;
  } else if (WIFEXITED(wstatus)) {
    c.kind = ExitCause::Kind::exited;
    c.exit_code = WEXITSTATUS(wstatus);
  } else {
    c.kind = ExitCause::Kind::exited;
    c.exit_code = -1;
  }
  if (!envd_sent) {
    if (ctx.oom_kills > 0) {
      c.kind = ExitCause::Kind::oom_killed;
    } else if (ctx.pids_max_hits > 0) {
      c.kind = ExitCause::Kind::pids_limit;
    }
  }
  return c;
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
  info.cause = derive_exit_cause(wstatus, ExitContext{});
  return info;
}

}  // namespace envd::process
