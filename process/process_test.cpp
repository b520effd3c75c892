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
  // Retention long enough that a loaded machine never expires an entry before the test looks.
  ProcessTable table{std::chrono::milliseconds(2000)};
  ProcessLimits limits;

  std::shared_ptr<Process> start(std::vector<std::string> args, StdinMode stdin_mode = StdinMode::null,
                                 std::shared_ptr<OutputRing> ring = nullptr, std::string tag = "t") {
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
    opts.tag = std::move(tag);
    opts.ring = std::move(ring);
    return Process::launch(io.get_executor(), table, child, -1, std::move(opts), limits);
  }

  // Runs until the process's end is known; returns stdout seen by a subscriber.
  std::string drain(const std::shared_ptr<Process>& p, std::chrono::milliseconds limit = std::chrono::seconds(15)) {
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
  ::usleep(2'100'000);
  CHECK(std::holds_alternative<std::monostate>(r.table.by_pid(p->pid())));
}

TEST_CASE("process: end does not wait for a background child holding the pipes") {
  Run r;
  auto p = r.start({"-c", "echo last; (sleep 30; echo late) & exit 0"});
  auto t0 = std::chrono::steady_clock::now();
  auto out = r.drain(p, std::chrono::seconds(20));
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(15));  // vs the 30 s sleep
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
  for (auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
       !p->start_error() && std::chrono::steady_clock::now() < until;)
    r.io.run_for(std::chrono::milliseconds(5));
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
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
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

// --- output retention (issue 13 part 1) ---
TEST_CASE("process: output retention keeps the ring of an ended process, within its bounds") {
  Run r;
  auto budget = std::make_shared<RetentionBudget>();
  budget->total = 3 * 200'000;
  r.table.set_output_retention({std::chrono::milliseconds(60'000), 2}, budget);
  std::vector<pid_t> pids;
  for (int k = 0; k < 3; ++k) {
    auto ring = std::make_shared<OutputRing>(200'000, budget);
    auto p = r.start({"-c", "printf abc; printf de >&2; printf f"}, StdinMode::null, ring, "t" + std::to_string(k));
    ring.reset();
    r.io.restart();  // the previous process's work ran out and stopped the loop
    CHECK(r.drain(p).size() == 6);
    REQUIRE(p->end());
    CHECK(p->ring() == nullptr);  // the table holds it now, not the process
    pids.push_back(p->pid());
  }
  // At most two ended rings: the oldest gave way, but its byte counts remain (all counted as lost).
  auto oldest = std::get<ProcessTable::Retained>(r.table.by_pid(pids[0]));
  CHECK(oldest.had_ring);
  CHECK(oldest.ring == nullptr);
  CHECK(oldest.written == StreamOffsets{4, 2, 0});
  auto newest = std::get<ProcessTable::Retained>(r.table.by_pid(pids[2]));
  REQUIRE(newest.ring);
  auto rp = newest.ring->replay({1, 0, 0});
  CHECK(!rp.any_lost());
  // Per stream: where its replay starts and what it holds (the interleaving is the read order).
  std::string got[3], chunk;
  std::uint64_t first[3] = {9, 9, 9};
  OutputStream s{};
  std::uint64_t off = 0;
  while (rp.next(s, off, chunk, 1 << 20)) {
    auto i = static_cast<std::size_t>(s);
    if (got[i].empty()) first[i] = off;
    got[i] += chunk;
  }
  CHECK(got[0] == "bcf");
  CHECK(first[0] == 1);
  CHECK(got[1] == "de");
  CHECK(first[1] == 0);
  CHECK(got[2].empty());
  // Ended rings are charged what they hold (one 64 KiB block each), not their capacity; making room
  // for a new one drops them oldest first.
  CHECK(budget->used == 2 * 65536);
  newest = {};
  CHECK(r.table.make_room(3 * 200'000));
  CHECK(budget->used == 0);
  CHECK(std::get<ProcessTable::Retained>(r.table.by_pid(pids[2])).ring == nullptr);
  CHECK(!r.table.make_room(3 * 200'000 + 1));
}
// --- end output retention ---
