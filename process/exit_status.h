#pragma once
// How a reaped process is described on the wire (contract §4.2 EndEvent), with Go's wording:
// ProcessState.String() for `status`, ExitCode() for `exit_code` (-1 on a signal), and the same
// text as `error` whenever the exit was not clean.
#include <cstdint>
#include <optional>
#include <string>

namespace envd::process {

// Typed exit cause (issue 13.2, opt-in on the wire as EndEvent.cause): what ended the process and,
// for a signal, whether envd sent it. Always computed; only streams that asked see it.
struct ExitCause {
  enum class Kind { exited = 1, signaled = 2, oom_killed = 3, pids_limit = 4 };
  enum class Sender { none = 0, other = 1, send_signal = 2, start_deadline = 3 };
  Kind kind = Kind::exited;
  int exit_code = 0;  // -1 unless it exited
  int signal = 0;     // 0 unless a signal ended it
  bool core_dumped = false;
  Sender sent_by = Sender::none;
  std::uint64_t oom_kills = 0;      // memory.events oom_kill of its own cgroup (limited commands)
  std::uint64_t pids_max_hits = 0;  // pids.events max of its own cgroup (limited commands)
};

// What envd knows about a process besides its wait status.
struct ExitContext {
  std::uint64_t sent_signals = 0;  // bit n: SendSignal delivered signal n
  bool start_deadline = false;     // the Start deadline SIGKILLed its group
  std::uint64_t oom_kills = 0;
  std::uint64_t pids_max_hits = 0;
};

// A signal ended it: envd's deadline kill (SIGKILL after the deadline), else a signal SendSignal
// delivered, else someone else. An OOM kill in its group makes the cause oom_killed and a refused
// fork pids_limit, unless envd sent the signal that ended it.
ExitCause derive_exit_cause(int wstatus, const ExitContext& ctx);

// "SIGKILL", "SIGRTMIN+2", ... ("SIG<n>" past SIGRTMAX).
std::string signal_abbrev(int sig);

struct ExitInfo {
  int exit_code = 0;  // -1 when killed by a signal
  bool exited = false;
  std::string status;                // "exit status 1", "signal: killed", ...
  std::optional<std::string> error;  // absent on exit status 0
  ExitCause cause;                   // derive_exit_cause(); describe_wait_status() fills the basics
};

// From a waitpid() status word.
ExitInfo describe_wait_status(int wstatus);

// Go's syscall.Signal.String() on Linux ("killed", "terminated", "signal 34").
std::string go_signal_name(int sig);

}  // namespace envd::process
