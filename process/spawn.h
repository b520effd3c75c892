#pragma once
// Starting a child as a given user (contract §3.1), without a shell wrapper: the child itself does
// what envd's `/bin/sh -c 'echo 100 > /proc/$$/oom_score_adj && exec ionice nice ...'` wrapper does
// (oom_score_adj 100, best-effort I/O priority 4, nice 0), then drops to the user's credentials,
// enters the working directory and execs the command, searching PATH like execvp.
//
// A command that cannot be executed still "starts": the child writes `<cmd>: not found` (or the
// reason) on its stderr and exits 127 (126 when found but not executable), as the wrapper does.
// Failures before exec (credentials, cwd) are reported to the parent through a status pipe and
// become an RPC error before any start event.
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace envd::process {

enum class StdinMode { pipe, null };

struct SpawnRequest {
  std::string cmd;                // argv[0] and the name looked up in PATH
  std::vector<std::string> args;  // argv[1..]
  std::vector<std::string> env;   // "KEY=value", final order
  std::string cwd;                // must be non-empty
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;
  StdinMode stdin_mode = StdinMode::pipe;
  int pty_slave = -1;            // >= 0: PTY child (new session, controlling tty, fds 0-2 on the slave)
  int cgroup_fd = -1;            // >= 0: clone3(CLONE_INTO_CGROUP) into this cgroup directory
  bool cgroup_required = false;  // true: fail rather than run outside cgroup_fd (limited commands)
  bool adjust_priority = true;   // oom_score_adj 100, ionice best-effort/4, nice 0
};

struct SpawnedChild {
  pid_t pid = -1;
  int pidfd = -1;
  // Parent ends, O_NONBLOCK | O_CLOEXEC; -1 when not applicable (PTY, or stdin /dev/null).
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // O_NONBLOCK | O_CLOEXEC read end of the status pipe: EOF when the child reached exec (or gave
  // up at exec, having reported on its stderr); a ChildFailure record when set-up failed.
  int status_fd = -1;
  bool in_cgroup = false;
  std::string error;  // non-empty: nothing was started, every fd is -1
  // The error is envd's own (pipe or pidfd creation, e.g. out of fds: EMFILE/ENFILE), not the
  // command's: `internal` rather than `invalid_argument` (contract §4.2).
  bool internal_error = false;
  bool cgroup_refused = false;  // cgroup_required and clone3 could not place it
  bool ok() const { return error.empty(); }
};

// The record a child writes to the status pipe when its set-up fails before exec.
struct ChildFailure {
  std::int32_t stage = 0;  // ChildStage
  std::int32_t err = 0;    // errno
};
enum ChildStage : std::int32_t {
  stage_fds = 1,
  stage_session = 2,
  stage_credentials = 3,
  stage_chdir = 4,
  stage_exec = 5,  // execve refused the argument list (E2BIG)
};

// Describes a ChildFailure as envd's error text after "error starting process '...': ".
std::string describe_child_failure(const ChildFailure& f, const std::string& cwd);

// True if execve would refuse the argument list and environment (E2BIG): one string over
// MAX_ARG_STRLEN or everything over ARG_MAX. spawn_child then starts nothing.
bool exceeds_exec_limits(const SpawnRequest& req);

// Forks the child. The caller owns every fd in the result (and must reap the pid).
SpawnedChild spawn_child(const SpawnRequest& req);

// Reads the status pipe once it is readable. Returns: 1 = a failure record (in `out`), 0 = EOF
// (exec reached), -1 = not ready yet (EAGAIN).
int read_child_status(int status_fd, ChildFailure& out);

// PATH search list for a command (execvp's rules): the name itself if it contains '/', else
// every PATH entry joined with it ("" entries mean the current directory).
std::vector<std::string> exec_candidates(const std::string& cmd, const std::string& path_value);

}  // namespace envd::process
