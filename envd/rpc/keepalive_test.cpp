#include "envd/rpc/keepalive.h"

#include <doctest/doctest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>

using namespace envd::rpc;
using namespace std::chrono;

TEST_CASE("keepalive: header parsing never fails and clamps") {
  CHECK(parse_keepalive_interval(std::nullopt) == seconds(90));
  CHECK(parse_keepalive_interval("50") == seconds(50));
  CHECK(parse_keepalive_interval("+7") == seconds(7));
  CHECK(parse_keepalive_interval("") == seconds(90));
  CHECK(parse_keepalive_interval("abc") == seconds(90));
  CHECK(parse_keepalive_interval("5s") == seconds(90));
  CHECK(parse_keepalive_interval("1.5") == seconds(90));
  CHECK(parse_keepalive_interval("0") == kMinKeepalive);
  CHECK(parse_keepalive_interval("-3") == kMinKeepalive);
  CHECK(parse_keepalive_interval("99999999999999999999999") == seconds(90));  // out of range, like Atoi
  CHECK(parse_keepalive_interval("999999999") == kMaxKeepalive);
}

TEST_CASE("keepalive: timer fires after the interval and reset postpones it") {
  boost::asio::io_context io;
  KeepaliveTimer timer(io.get_executor(), milliseconds(40));
  std::vector<steady_clock::duration> fired;
  auto start = steady_clock::now();
  timer.start([&] {
    fired.push_back(steady_clock::now() - start);  // before take_due() restarts the interval
    REQUIRE(timer.take_due());
    CHECK_FALSE(timer.take_due());  // once per tick
    if (fired.size() == 2) io.stop();
  });
  // Reset after 30 ms: the first tick moves to >= 70 ms.
  boost::asio::steady_timer resetter(io, milliseconds(30));
  resetter.async_wait([&](auto) { timer.reset(); });
  io.run();
  REQUIRE(fired.size() == 2);
  CHECK(fired[0] >= milliseconds(70));
  CHECK(fired[1] >= fired[0] + milliseconds(40));
}
