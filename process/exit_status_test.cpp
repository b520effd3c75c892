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
