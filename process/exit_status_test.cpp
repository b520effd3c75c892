#include "process/exit_status.h"

#include <doctest/doctest.h>
#include <signal.h>

using envd::process::describe_wait_status;

TEST_CASE("exit status: Go wording for exits and signals") {
  auto ok = describe_wait_status(0);
  CHECK(ok.exited);
  CHECK(ok.exit_code == 0);
  CHECK(ok.status == "exit status 0");
  CHECK_FALSE(ok.error.has_value());

  auto one = describe_wait_status(1 << 8);
  CHECK(one.exited);
  CHECK(one.exit_code == 1);
  CHECK(one.status == "exit status 1");
  CHECK(one.error == "exit status 1");

  auto killed = describe_wait_status(SIGKILL);
  CHECK_FALSE(killed.exited);
  CHECK(killed.exit_code == -1);
  CHECK(killed.status == "signal: killed");
  CHECK(killed.error == "signal: killed");

  CHECK(describe_wait_status(SIGTERM).status == "signal: terminated");
  CHECK(describe_wait_status(SIGHUP).status == "signal: hangup");
  CHECK(describe_wait_status(SIGSEGV | 0x80).status == "signal: segmentation fault (core dumped)");
  CHECK(describe_wait_status(34).status == "signal: signal 34");
}

using envd::process::derive_exit_cause;
using envd::process::ExitCause;
using envd::process::ExitContext;

TEST_CASE("exit cause: exits and signals nobody in envd sent") {
  auto c = derive_exit_cause(3 << 8, ExitContext{});
  CHECK(c.kind == ExitCause::Kind::exited);
  CHECK(c.exit_code == 3);
  CHECK(c.signal == 0);
  CHECK(c.sent_by == ExitCause::Sender::none);

  c = derive_exit_cause(SIGSEGV | 0x80, ExitContext{});
  CHECK(c.kind == ExitCause::Kind::signaled);
  CHECK(c.exit_code == -1);
  CHECK(c.signal == SIGSEGV);
  CHECK(c.core_dumped);
  CHECK(c.sent_by == ExitCause::Sender::other);
  // describe_wait_status carries the same cause (without envd's context).
  CHECK(envd::process::describe_wait_status(SIGTERM).cause.sent_by == ExitCause::Sender::other);
}

TEST_CASE("exit cause: SendSignal and the Start deadline are told apart") {
  ExitContext sent;
  sent.sent_signals = 1ull << SIGTERM;
  CHECK(derive_exit_cause(SIGTERM, sent).sent_by == ExitCause::Sender::send_signal);
  // A different signal than the one envd delivered came from someone else.
  CHECK(derive_exit_cause(SIGKILL, sent).sent_by == ExitCause::Sender::other);

  ExitContext deadline;
  deadline.start_deadline = true;
  deadline.sent_signals = 1ull << SIGKILL;  // the deadline wins over an earlier SendSignal SIGKILL
  CHECK(derive_exit_cause(SIGKILL, deadline).sent_by == ExitCause::Sender::start_deadline);
  // After the deadline fired, a SIGTERM the process got elsewhere is not the deadline's.
  deadline.sent_signals = 0;
  CHECK(derive_exit_cause(SIGTERM, deadline).sent_by == ExitCause::Sender::other);
}

TEST_CASE("exit cause: OOM and pids limit from the group's events") {
  ExitContext oom;
  oom.oom_kills = 1;
  auto c = derive_exit_cause(SIGKILL, oom);
  CHECK(c.kind == ExitCause::Kind::oom_killed);
  CHECK(c.signal == SIGKILL);
  CHECK(c.oom_kills == 1);
  // A shell whose child was OOM-killed exits 137: still OOM.
  CHECK(derive_exit_cause(137 << 8, oom).kind == ExitCause::Kind::oom_killed);
  // envd's own kill is the cause even if the group had an OOM kill before.
  oom.sent_signals = 1ull << SIGKILL;
  CHECK(derive_exit_cause(SIGKILL, oom).kind == ExitCause::Kind::signaled);

  ExitContext pids;
  pids.pids_max_hits = 4;
  c = derive_exit_cause(1 << 8, pids);
  CHECK(c.kind == ExitCause::Kind::pids_limit);
  CHECK(c.exit_code == 1);
  CHECK(c.pids_max_hits == 4);
  pids.oom_kills = 1;  // both: the OOM kill is what ended it
  CHECK(derive_exit_cause(SIGKILL, pids).kind == ExitCause::Kind::oom_killed);
}

TEST_CASE("exit cause: signal abbreviations") {
  CHECK(envd::process::signal_abbrev(SIGKILL) == "SIGKILL");
  CHECK(envd::process::signal_abbrev(SIGUSR1) == "SIGUSR1");
  CHECK(envd::process::signal_abbrev(SIGRTMIN) == "SIGRTMIN");
  CHECK(envd::process::signal_abbrev(SIGRTMIN + 2) == "SIGRTMIN+2");
}
