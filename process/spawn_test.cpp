#include "process/spawn.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "process/exit_status.h"

using namespace envd::process;

namespace {
// Blocking helpers for tests: read a non-blocking fd to EOF, wait for the status pipe.
std::string read_all(int fd) {
  std::string out;
  char buf[4096];
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 5000);
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n > 0) {
      out.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EAGAIN) continue;
    return out;
  }
}

struct Ran {
  int status_record = 0;
  ChildFailure failure;
  std::string out, err;
  ExitInfo exit;
};

Ran run(SpawnRequest req) {
  if (req.cwd.empty()) req.cwd = "/";
  if (req.env.empty()) req.env = {"PATH=/usr/local/bin:/usr/bin:/bin"};
  req.uid = ::getuid();
  req.gid = ::getgid();
  req.groups = {::getgid()};
  req.adjust_priority = false;
  auto c = spawn_child(req);
  REQUIRE(c.ok());
  Ran r;
  pollfd p{c.status_fd, POLLIN, 0};
  ::poll(&p, 1, 5000);
  r.status_record = read_child_status(c.status_fd, r.failure);
  if (c.stdin_fd >= 0) ::close(c.stdin_fd);
  r.out = read_all(c.stdout_fd);
  r.err = read_all(c.stderr_fd);
  int ws = 0;
  ::waitpid(c.pid, &ws, 0);
  r.exit = describe_wait_status(ws);
  for (int fd : {c.pidfd, c.status_fd, c.stdout_fd, c.stderr_fd}) ::close(fd);
  return r;
}
}  // namespace

TEST_CASE("spawn: argv, env and cwd reach the child; its own process group") {
  SpawnRequest req;
  req.cmd = "/bin/sh";
  req.args = {"-c", "echo \"$0 $FOO\"; pwd; test $(ps -o pgid= $$) -eq $$ && echo own-group; echo err >&2; exit 3"};
  req.env = {"PATH=/usr/bin:/bin", "FOO=bar"};
  req.cwd = "/tmp";
  auto r = run(req);
  CHECK(r.status_record == 0);
  CHECK(r.out == "/bin/sh bar\n/tmp\nown-group\n");
  CHECK(r.err == "err\n");
  CHECK(r.exit.exit_code == 3);
}

TEST_CASE("spawn: PATH lookup uses the child's PATH") {
  SpawnRequest req;
  req.cmd = "echo";
  req.args = {"hello"};
  auto r = run(req);
  CHECK(r.out == "hello\n");
  CHECK(r.exit.exit_code == 0);
}

TEST_CASE("spawn: a missing command starts, says 'not found' on stderr, exits 127") {
  SpawnRequest req;
  req.cmd = "definitely-not-a-command-xyz";
  auto r = run(req);
  CHECK(r.status_record == 0);
  CHECK(r.err == "definitely-not-a-command-xyz: not found\n");
  CHECK(r.exit.exit_code == 127);
}

TEST_CASE("spawn: a file that is not executable exits 126 with the reason") {
  char path[] = "/tmp/envd-spawn-test-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  SpawnRequest req;
  req.cmd = path;
  auto r = run(req);
  ::unlink(path);
  CHECK(r.exit.exit_code == 126);
  CHECK(r.err == std::string(path) + ": Permission denied\n");
}

TEST_CASE("spawn: a missing cwd is reported through the status pipe before exec") {
  SpawnRequest req;
  req.cmd = "/bin/true";
  req.cwd = "/nonexistent-dir-xyz";
  auto r = run(req);
  CHECK(r.status_record == 1);
  CHECK(r.failure.stage == stage_chdir);
  CHECK(describe_child_failure(r.failure, req.cwd) == "chdir /nonexistent-dir-xyz: No such file or directory");
}

TEST_CASE("spawn: stdin pipe and /dev/null") {
  SpawnRequest req;
  req.cmd = "/bin/cat";
  req.stdin_mode = StdinMode::null;
  auto r = run(req);
  CHECK(r.out.empty());
  CHECK(r.exit.exit_code == 0);
}

TEST_CASE("spawn: exec candidates follow execvp") {
  CHECK(exec_candidates("/bin/ls", "/a:/b") == std::vector<std::string>{"/bin/ls"});
  CHECK(exec_candidates("ls", "/a::/b") == std::vector<std::string>{"/a/ls", "ls", "/b/ls"});
}
