#include "pty/pty.h"

#include <doctest/doctest.h>
#include <unistd.h>

TEST_CASE("pty: open a pair with a size, resize it, data flows master to slave") {
  auto p = envd::pty::open_pair(80, 24);
  REQUIRE(p.ok());
  std::uint16_t cols = 0, rows = 0;
  REQUIRE(envd::pty::window_size(p.slave, cols, rows) == 0);
  CHECK(cols == 80);
  CHECK(rows == 24);
  REQUIRE(envd::pty::resize(p.master, 132, 50) == 0);
  REQUIRE(envd::pty::window_size(p.slave, cols, rows) == 0);
  CHECK(cols == 132);
  CHECK(rows == 50);
  REQUIRE(::write(p.master, "hi\n", 3) == 3);
  char buf[16] = {};
  auto n = ::read(p.slave, buf, sizeof buf);
  CHECK(n == 3);
  CHECK(std::string(buf, 2) == "hi");
  ::close(p.master);
  ::close(p.slave);
}

TEST_CASE("pty: a zero size gives a 0x0 window") {
  auto p = envd::pty::open_pair(0, 0);
  REQUIRE(p.ok());
  std::uint16_t cols = 1, rows = 1;
  REQUIRE(envd::pty::window_size(p.master, cols, rows) == 0);
  CHECK(cols == 0);
  CHECK(rows == 0);
  ::close(p.master);
  ::close(p.slave);
}
