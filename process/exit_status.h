#pragma once
// How a reaped process is described on the wire (contract §4.2 EndEvent), with Go's wording:
// ProcessState.String() for `status`, ExitCode() for `exit_code` (-1 on a signal), and the same
// text as `error` whenever the exit was not clean.
#include <optional>
#include <string>

namespace envd::process {

struct ExitInfo {
  int exit_code = 0;  // -1 when killed by a signal
  bool exited = false;
  std::string status;                // "exit status 1", "signal: killed", ...
  std::optional<std::string> error;  // absent on exit status 0
};

// From a waitpid() status word.
ExitInfo describe_wait_status(int wstatus);

// Go's syscall.Signal.String() on Linux ("killed", "terminated", "signal 34").
std::string go_signal_name(int sig);

}  // namespace envd::process
