#include "process/spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "envd/open_files.h"
#include "envd/os_error.h"
#include "pty/pty.h"

namespace envd::process {

namespace {

// struct clone_args of clone3(2) (kernel ≥ 5.7 for the cgroup field), declared here to keep
// <linux/sched.h> away from glibc's <sched.h>.
struct CloneArgs {
  std::uint64_t flags;
  std::uint64_t pidfd;
  std::uint64_t child_tid;
  std::uint64_t parent_tid;
  std::uint64_t exit_signal;
  std::uint64_t stack;
  std::uint64_t stack_size;
  std::uint64_t tls;
  std::uint64_t set_tid;
  std::uint64_t set_tid_size;
  std::uint64_t cgroup;
};
constexpr std::uint64_t kClonePidfd = 0x00001000ULL;
constexpr std::uint64_t kCloneIntoCgroup = 0x200000000ULL;
constexpr int kIoprioClassBe = 2;
constexpr int kIoprioClassShift = 13;
constexpr int kIoprioWhoProcess = 1;
constexpr std::size_t kOutputPipeBytes = 256 * 1024;

int set_nonblock(int fd) {
  int fl = ::fcntl(fd, F_GETFL);
  if (fl < 0 || ::fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) return errno;
  return 0;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

// Everything the child needs, prepared before the fork so that the child allocates nothing.
struct ChildPlan {
  const SpawnRequest* req;
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<std::string> candidates;
  std::vector<char*> sh_argv;  // "/bin/sh", <script>, args..., nullptr
  int stdin_fd;                // child's end (read end of the pipe, /dev/null or -1 for PTY)
  int stdout_fd;
  int stderr_fd;
  int status_fd;  // write end
};

void child_report(int status_fd, ChildStage stage, int err) {
  ChildFailure f{stage, err};
  [[maybe_unused]] auto n = ::write(status_fd, &f, sizeof f);
  ::_exit(127);
}

void write_all(int fd, const char* s, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, s, n);
    if (w <= 0) {
      if (w < 0 && errno == EINTR) continue;
      return;
    }
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

// Moves fd out of the 0..2 range so that dup2 into 0..2 never clobbers another source.
int lift_fd(int fd) {
  if (fd < 0 || fd > 2) return fd;
  return ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

[[noreturn]] void child_main(ChildPlan& plan) {
  const SpawnRequest& req = *plan.req;
  // envd ignores SIGPIPE and may block signals: a child starts with default dispositions.
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) ::sigaction(s, &dfl, nullptr);

  if (req.pty_slave >= 0) {
    if (int e = pty::make_controlling_tty_in_child(req.pty_slave); e != 0)
      child_report(plan.status_fd, stage_session, e);
  } else if (::setpgid(0, 0) != 0) {
    // Own process group: signals and timeouts reach the whole group ("kill means gone").
    child_report(plan.status_fd, stage_session, errno);
  }

  int in = lift_fd(req.pty_slave >= 0 ? req.pty_slave : plan.stdin_fd);
  int out = lift_fd(req.pty_slave >= 0 ? req.pty_slave : plan.stdout_fd);
  int err = lift_fd(req.pty_slave >= 0 ? req.pty_slave : plan.stderr_fd);
  if (in < 0 || out < 0 || err < 0) child_report(plan.status_fd, stage_fds, errno);
  if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) child_report(plan.status_fd, stage_fds, errno);
  // Nothing else of envd's leaks into the child (sockets, other processes' pipes).
  if (::syscall(SYS_close_range, 3U, ~0U, 4U /* CLOSE_RANGE_CLOEXEC */) != 0) {
    struct rlimit rl {};
    long max =
        (::getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) ? static_cast<long>(rl.rlim_cur) : 65536;
    if (max > 65536) max = 65536;
    for (int fd = 3; fd < max; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  envd::open_files::restore_in_child();  // the limit envd was started with, not the raised one

  if (req.adjust_priority) {
    // The wrapper's effects, best effort (envd's wrapper stops on failure; we carry on).
    int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      [[maybe_unused]] auto n = ::write(fd, "100", 3);
      ::close(fd);
    }
    ::syscall(SYS_ioprio_set, kIoprioWhoProcess, 0, (kIoprioClassBe << kIoprioClassShift) | 4);
    ::setpriority(PRIO_PROCESS, 0, 0);
  }

  // Raw syscalls: glibc's setxid wrappers would try to synchronise threads that only exist in the
  // parent (this child comes from clone3, not glibc's fork).
  if (::syscall(SYS_setgroups, req.groups.size(), req.groups.data()) != 0 ||
      ::syscall(SYS_setresgid, req.gid, req.gid, req.gid) != 0 ||
      ::syscall(SYS_setresuid, req.uid, req.uid, req.uid) != 0) {
    child_report(plan.status_fd, stage_credentials, errno);
  }
  if (::chdir(req.cwd.c_str()) != 0) child_report(plan.status_fd, stage_chdir, errno);

  bool saw_eacces = false;
  bool stopped = false;
  int last_err = ENOENT;
  for (auto& cand : plan.candidates) {
    ::execve(cand.c_str(), plan.argv.data(), plan.envp.data());
    int e = errno;
    if (e == ENOEXEC) {
      // execvp's fallback: a file without a #! line is a shell script.
      plan.sh_argv[1] = const_cast<char*>(cand.c_str());
      ::execve("/bin/sh", plan.sh_argv.data(), plan.envp.data());
      e = ENOEXEC;
    }
    if (e == EACCES) saw_eacces = true;
    if (e != ENOENT && e != ENOTDIR && e != EACCES) {
      last_err = e;
      stopped = true;
      break;
    }
    last_err = e;
  }
  // execvp: EACCES on any PATH entry wins over a later "not found".
  if (saw_eacces && !stopped) last_err = EACCES;
  // Arguments or environment too big for execve: envd's exec of its /bin/sh wrapper fails the
  // same way, which it answers as an RPC error, not as a started command.
  if (last_err == E2BIG) child_report(plan.status_fd, stage_exec, E2BIG);
  // The parent waits for the status pipe to close before it reads our output: close it first, so
  // a message longer than the pipe's buffer (a huge command name) never blocks this child.
  ::close(plan.status_fd);
  // Like a shell: "<cmd>: not found" (127) or "<cmd>: <reason>" (126), on the child's stderr.
  const std::string& name = req.cmd;
  write_all(2, name.data(), name.size());
  const char* reason = (last_err == ENOENT || last_err == ENOTDIR) ? "not found" : strerrordesc_np(last_err);
  write_all(2, ": ", 2);
  write_all(2, reason, std::strlen(reason));
  write_all(2, "\n", 1);
  ::_exit((last_err == ENOENT || last_err == ENOTDIR) ? 127 : 126);
}

}  // namespace

std::vector<std::string> exec_candidates(const std::string& cmd, const std::string& path_value) {
  std::vector<std::string> out;
  if (cmd.find('/') != std::string::npos || cmd.empty()) {
    out.push_back(cmd);
    return out;
  }
  std::size_t start = 0;
  for (;;) {
    auto end = path_value.find(':', start);
    std::string dir = path_value.substr(start, end == std::string::npos ? std::string::npos : end - start);
    out.push_back(dir.empty() ? cmd : dir + "/" + cmd);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

std::string describe_child_failure(const ChildFailure& f, const std::string& cwd) {
  switch (f.stage) {
    case stage_chdir: return "chdir " + cwd + ": " + std::strerror(f.err);
    case stage_credentials: return "setting credentials: " + std::string(std::strerror(f.err));
    case stage_session: return "setting up the session: " + std::string(std::strerror(f.err));
    case stage_exec: return "fork/exec: " + errno_text(f.err);
    default: return "setting up stdio: " + std::string(std::strerror(f.err));
  }
}

int read_child_status(int status_fd, ChildFailure& out) {
  for (;;) {
    ssize_t n = ::read(status_fd, &out, sizeof out);
    if (n == static_cast<ssize_t>(sizeof out)) return 1;
    if (n == 0) return 0;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return -1;
    return 0;  // a short record or an error: treat as "no failure reported"
  }
}

bool exceeds_exec_limits(const SpawnRequest& req) {
  // Linux: one string at most MAX_ARG_STRLEN (32 pages, NUL included); all of argv and envp
  // (strings and pointers) at most ARG_MAX (a quarter of the stack limit).
  const std::size_t max_string = 32 * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  long arg_max = ::sysconf(_SC_ARG_MAX);
  std::size_t total = 0;
  auto add = [&](const std::string& s) {
    total += s.size() + 1 + sizeof(char*);
    return s.size() + 1 > max_string;
  };
  if (add(req.cmd)) return true;
  for (const auto& a : req.args)
    if (add(a)) return true;
  for (const auto& e : req.env)
    if (add(e)) return true;
  return arg_max > 0 && total > static_cast<std::size_t>(arg_max);
}

SpawnedChild spawn_child(const SpawnRequest& req) {
  SpawnedChild result;
  if (exceeds_exec_limits(req)) {
    // What envd's exec of its /bin/sh wrapper answers; checked here because our own execve may
    // fail earlier on the long name (ENAMETOOLONG) and "start" a command Go would refuse.
    result.error = "fork/exec: " + errno_text(E2BIG);
    return result;
  }
  ChildPlan plan{};
  plan.req = &req;

  std::string path_value = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  for (const auto& kv : req.env) {
    if (kv.rfind("PATH=", 0) == 0) path_value = kv.substr(5);
  }
  plan.candidates = exec_candidates(req.cmd, path_value);
  plan.argv.push_back(const_cast<char*>(req.cmd.c_str()));
  for (const auto& a : req.args) plan.argv.push_back(const_cast<char*>(a.c_str()));
  plan.argv.push_back(nullptr);
  plan.sh_argv.push_back(const_cast<char*>("/bin/sh"));
  plan.sh_argv.push_back(nullptr);  // the script path, filled in by the child
  for (const auto& a : req.args) plan.sh_argv.push_back(const_cast<char*>(a.c_str()));
  plan.sh_argv.push_back(nullptr);
  for (const auto& e : req.env) plan.envp.push_back(const_cast<char*>(e.c_str()));
  plan.envp.push_back(nullptr);

  int in_pipe[2] = {-1, -1}, out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, st_pipe[2] = {-1, -1};
  int devnull = -1;
  auto cleanup = [&] {
    for (int* p : {in_pipe, out_pipe, err_pipe, st_pipe}) {
      close_fd(p[0]);
      close_fd(p[1]);
    }
    close_fd(devnull);
  };
  auto fail = [&](std::string msg, bool internal = false) {
    cleanup();
    result = SpawnedChild{};
    result.error = std::move(msg);
    result.internal_error = internal;
    return result;
  };

  if (::pipe2(st_pipe, O_CLOEXEC) != 0) return fail(syscall_error("pipe", errno), true);
  if (req.pty_slave < 0) {
    if (req.stdin_mode == StdinMode::pipe) {
      if (::pipe2(in_pipe, O_CLOEXEC) != 0) return fail(syscall_error("pipe", errno), true);
      plan.stdin_fd = in_pipe[0];
    } else {
      devnull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
      if (devnull < 0) {
        // No /dev/null (a bare chroot): a pipe whose write end is closed reads as EOF too.
        if (::pipe2(in_pipe, O_CLOEXEC) != 0) return fail(syscall_error("pipe", errno), true);
        close_fd(in_pipe[1]);
        plan.stdin_fd = in_pipe[0];
      } else {
        plan.stdin_fd = devnull;
      }
    }
    if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0)
      return fail(syscall_error("pipe", errno), true);
    plan.stdout_fd = out_pipe[1];
    plan.stderr_fd = err_pipe[1];
  }
  plan.status_fd = st_pipe[1];

  int pidfd = -1;
  CloneArgs ca{};
  ca.flags = kClonePidfd;
  ca.pidfd = reinterpret_cast<std::uint64_t>(&pidfd);
  ca.exit_signal = SIGCHLD;
  if (req.cgroup_fd >= 0) {
    ca.flags |= kCloneIntoCgroup;
    ca.cgroup = static_cast<std::uint64_t>(req.cgroup_fd);
  }
  long pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  if (pid < 0 && req.cgroup_fd >= 0 && req.cgroup_required) {
    // A limited command (issue 13.2) never runs outside its group.
    int e = errno;
    auto r = fail("clone3 into its cgroup: " + errno_text(e), e == EMFILE || e == ENFILE);
    r.cgroup_refused = !r.internal_error;
    return r;
  }
  if (pid < 0 && req.cgroup_fd >= 0 && errno != EAGAIN && errno != ENOMEM && errno != EMFILE && errno != ENFILE) {
    // The cgroup refused us (controller constraints, permissions, old kernel): run unplaced.
    ca.flags &= ~kCloneIntoCgroup;
    ca.cgroup = 0;
    pid = ::syscall(SYS_clone3, &ca, sizeof ca);
  } else if (pid >= 0 && req.cgroup_fd >= 0) {
    result.in_cgroup = true;
  }
  bool used_fork = false;
  if (pid < 0 && (errno == ENOSYS || errno == EPERM || errno == EINVAL)) {
    used_fork = true;
    pid = ::fork();
  }
  if (pid < 0) {
    int e = errno;  // out of fds for the pidfd: envd's trouble, not the command's
    return fail(syscall_error("fork", e), e == EMFILE || e == ENFILE);
  }
  if (pid == 0) child_main(plan);

  if (used_fork) {
    pidfd = static_cast<int>(::syscall(SYS_pidfd_open, static_cast<pid_t>(pid), 0));
    if (pidfd < 0) {
      int e = errno;
      ::kill(static_cast<pid_t>(pid), SIGKILL);
      ::waitpid(static_cast<pid_t>(pid), nullptr, 0);
      return fail(syscall_error("pidfd_open", e), true);
    }
    ::fcntl(pidfd, F_SETFD, FD_CLOEXEC);
  }

  // Parent: keep our ends, close the child's.
  close_fd(st_pipe[1]);
  close_fd(in_pipe[0]);
  close_fd(out_pipe[1]);
  close_fd(err_pipe[1]);
  close_fd(devnull);
  result.pid = static_cast<pid_t>(pid);
  result.pidfd = pidfd;
  result.status_fd = std::exchange(st_pipe[0], -1);
  result.stdin_fd = std::exchange(in_pipe[1], -1);
  result.stdout_fd = std::exchange(out_pipe[0], -1);
  result.stderr_fd = std::exchange(err_pipe[0], -1);
  for (int fd : {result.status_fd, result.stdin_fd, result.stdout_fd, result.stderr_fd}) {
    if (fd >= 0) set_nonblock(fd);
  }
  // Bigger output pipes: fewer wake-ups and larger reads for chatty commands (best effort; the
  // kernel caps it at /proc/sys/fs/pipe-max-size and charges it to the user's pipe quota).
  for (int fd : {result.stdout_fd, result.stderr_fd}) {
    if (fd >= 0) ::fcntl(fd, F_SETPIPE_SZ, static_cast<int>(kOutputPipeBytes));
  }
  return result;
}

}  // namespace envd::process
