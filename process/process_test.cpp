// Process + ProcessTable driven directly on an io_context (no RPC): exec confirmation, output
// fan-out, the bounded drain after the leader is reaped, retention, stdin ordering.
#include "process/process.h"

#include <doctest/doctest.h>
#include <signal.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

using namespace envd::process;
namespace asio = boost::asio;

namespace {
struct Run {
  asio::io_context io;
  ProcessTable table{std::chrono::milliseconds(200)};
  ProcessLimits limits;

  std::shared_ptr<Process> start(std::vector<std::string> args, StdinMode stdin_mode = StdinMode::null) {
    SpawnRequest req;
    req.cmd = "/bin/sh";
    req.args = std::move(args);
    req.env = {"PATH=/usr/bin:/bin"};
    req.cwd = "/";
    req.uid = ::getuid();
    req.gid = ::getgid();
    req.groups = {::getgid()};
    req.stdin_mode = stdin_mode;
    req.adjust_priority = false;
    auto child = spawn_child(req);
    REQUIRE(child.ok());
    Process::Options opts;
    opts.config.set_cmd("/bin/sh");
    opts.tag = "t";
    return Process::launch(io.get_executor(), table, child, -1, std::move(opts), limits);
  }

  // Runs until the process's end is known; returns stdout seen by a subscriber.
  std::string drain(const std::shared_ptr<Process>& p, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    Subscription sub(p->fanout(), p->fanout().subscribe());
    p->begin();
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!(p->end() && sub->queued_bytes() == 0) && std::chrono::steady_clock::now() < deadline) {
      while (auto c = sub->pop()) out.append(c->data(), c->size);
      io.run_for(std::chrono::milliseconds(5));
    }
    while (auto c = sub->pop()) out.append(c->data(), c->size);
    return out;
  }
};
}  // namespace

TEST_CASE("process: output then end; registered while live, retained after") {
  Run r;
  auto p = r.start({"-c", "echo hello; exit 5"});
  auto out = r.drain(p);
  CHECK(out == "hello\n");
  REQUIRE(p->end());
  CHECK(p->end()->exit_code == 5);
  CHECK(r.table.live().empty());
  auto found = r.table.by_tag("t");
  REQUIRE(std::holds_alternative<ProcessTable::Retained>(found));
  CHECK(std::get<ProcessTable::Retained>(found).end.status == "exit status 5");
  ::usleep(250'000);
  CHECK(std::holds_alternative<std::monostate>(r.table.by_pid(p->pid())));
}

TEST_CASE("process: end does not wait for a background child holding the pipes") {
  Run r;
  auto p = r.start({"-c", "echo last; (sleep 3; echo late) & exit 0"});
  auto t0 = std::chrono::steady_clock::now();
  auto out = r.drain(p, std::chrono::seconds(2));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1500));
  REQUIRE(p->end());
  CHECK(out == "last\n");
  CHECK(::kill(-p->pid(), SIGKILL) == 0);  // the background sleep is still there, in the group
}

TEST_CASE("process: a failed set-up is a start error, never registered") {
  Run r;
  SpawnRequest req;
  req.cmd = "/bin/true";
  req.env = {"PATH=/bin"};
  req.cwd = "/nonexistent-xyz";
  req.uid = ::getuid();
  req.gid = ::getgid();
  req.groups = {::getgid()};
  auto child = spawn_child(req);
  REQUIRE(child.ok());
  Process::Options opts;
  opts.start_error_prefix = "error starting process '/bin/true'";
  opts.cwd = req.cwd;
  auto p = Process::launch(r.io.get_executor(), r.table, child, -1, std::move(opts), r.limits);
  p->begin();
  r.io.run_for(std::chrono::milliseconds(200));
  REQUIRE(p->start_error());
  CHECK(*p->start_error() == "error starting process '/bin/true': chdir /nonexistent-xyz: No such file or directory");
  CHECK(r.table.live().empty());
}

TEST_CASE("process: stdin writes arrive in order, CloseStdin after them") {
  Run r;
  auto p = r.start({"-c", "cat"}, StdinMode::pipe);
  Subscription sub(p->fanout(), p->fanout().subscribe());
  p->begin();
  std::vector<envd::rpc::Status> results;
  auto feed = [&]() -> asio::awaitable<void> {
    std::string a = "one ", b = "two";
    results.push_back(co_await p->write_input(a, false));
    results.push_back(co_await p->write_input(b, false));
    results.push_back(p->close_stdin());
    results.push_back(co_await p->write_input(a, true));
  };
  asio::co_spawn(r.io, feed(), asio::detached);
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!p->end() && std::chrono::steady_clock::now() < deadline) {
    while (auto c = sub->pop()) out.append(c->data(), c->size);
    r.io.run_for(std::chrono::milliseconds(5));
  }
  while (auto c = sub->pop()) out.append(c->data(), c->size);
  CHECK(out == "one two");
  REQUIRE(results.size() == 4);
  CHECK(results[0].ok());
  CHECK(results[1].ok());
  CHECK(results[2].ok());
  CHECK(results[3].code == envd::rpc::Code::internal);  // pty input to a pipe process
}
