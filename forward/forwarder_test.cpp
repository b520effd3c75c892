#include "forward/forwarder.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <functional>

#include <boost/asio/io_context.hpp>

namespace asio = boost::asio;
using asio::ip::tcp;
using envd::forward::Listener;
using envd::forward::Policy;

namespace {

Policy policy(const char* address = "169.254.0.21", std::vector<envd::forward::PortRange> ports = {}) {
  Policy p;
  p.address = asio::ip::make_address(address);
  p.ports = std::move(ports);
  return p;
}

tcp::endpoint ep(const char* a, std::uint16_t port) { return tcp::endpoint(asio::ip::make_address(a), port); }

std::map<std::uint16_t, tcp::endpoint> wanted(const std::vector<Listener>& scan, const Policy& p,
                                              const std::set<std::uint64_t>& own = {}) {
  return envd::forward::wanted_forwards(scan, p, own);
}

}  // namespace

TEST_CASE("wanted_forwards: a loopback-only listener is forwarded to its address, IPv4 and IPv6") {
  auto w = wanted({Listener::v4("127.0.0.1", 3000), Listener::v6("::1", 3001, 0, true), Listener::v4("127.0.0.53", 53),
                   Listener::v6("::ffff:127.0.0.1", 3002)},
                  policy());
  REQUIRE(w.size() == 4);
  CHECK(w.at(3000) == ep("127.0.0.1", 3000));
  CHECK(w.at(3001) == ep("::1", 3001));
  CHECK(w.at(53) == ep("127.0.0.53", 53));
  CHECK(w.at(3002) == ep("127.0.0.1", 3002));  // a v4-mapped listener is reached over IPv4
}

TEST_CASE("wanted_forwards: 127.0.0.1 is preferred, then the lowest IPv4 loopback, then ::1; order does not matter") {
  auto a = wanted({Listener::v6("::1", 80), Listener::v4("127.0.0.9", 80), Listener::v4("127.0.0.1", 80),
                   Listener::v4("127.0.0.5", 80)},
                  policy());
  CHECK(a.at(80) == ep("127.0.0.1", 80));
  auto b = wanted({Listener::v4("127.0.0.9", 81), Listener::v6("::1", 81), Listener::v4("127.0.0.5", 81)}, policy());
  CHECK(b.at(81) == ep("127.0.0.5", 81));
}

TEST_CASE("wanted_forwards: wildcard and external listeners on the port need no forward") {
  // 0.0.0.0 covers an IPv4 forward address.
  CHECK(wanted({Listener::v4("127.0.0.1", 1), Listener::v4("0.0.0.0", 1)}, policy()).empty());
  // A dual-stack :: covers IPv4 too; a V6ONLY :: does not.
  CHECK(wanted({Listener::v4("127.0.0.1", 2), Listener::v6("::", 2, 0, false)}, policy()).empty());
  CHECK(wanted({Listener::v4("127.0.0.1", 3), Listener::v6("::", 3, 0, true)}, policy()).size() == 1);
  // A service already on the forward address itself (the address is taken).
  CHECK(wanted({Listener::v4("127.0.0.1", 4), Listener::v4("169.254.0.21", 4)}, policy()).empty());
  // Another external address leaves the forward address free: forwarded.
  CHECK(wanted({Listener::v4("127.0.0.1", 5), Listener::v4("10.0.0.7", 5)}, policy()).size() == 1);
  // An external-only service (no loopback listener) is not forwarded.
  CHECK(wanted({Listener::v4("10.0.0.7", 6), Listener::v4("0.0.0.0", 7), Listener::v6("::", 8)}, policy()).empty());
  // An IPv6 forward address: 0.0.0.0 does not cover it, :: does even when V6ONLY.
  CHECK(wanted({Listener::v4("127.0.0.1", 9), Listener::v4("0.0.0.0", 9)}, policy("fd00::21")).size() == 1);
  CHECK(wanted({Listener::v4("127.0.0.1", 10), Listener::v6("::", 10, 0, true)}, policy("fd00::21")).empty());
  CHECK(wanted({Listener::v6("::1", 11), Listener::v6("fd00::21", 11)}, policy("fd00::21")).empty());
}

TEST_CASE("wanted_forwards: envd's own sockets and ports outside --forward-ports are skipped") {
  auto scan = std::vector<Listener>{Listener::v4("127.0.0.1", 49983, 77), Listener::v4("127.0.0.1", 8080, 78),
                                    Listener::v4("127.0.0.1", 9000, 79), Listener::v4("127.0.0.1", 9100, 80)};
  CHECK(wanted(scan, policy(), {77}).count(49983) == 0);
  CHECK(wanted(scan, policy(), {77}).size() == 3);
  auto w = wanted(scan, policy("169.254.0.21", {{8080, 8080}, {9050, 9200}}));
  REQUIRE(w.size() == 2);
  CHECK(w.count(8080) == 1);
  CHECK(w.count(9100) == 1);
  // The forward address on loopback (as in the tests): a listener on it is the forward itself.
  CHECK(wanted({Listener::v4("127.0.0.1", 12), Listener::v4("127.0.0.2", 12)}, policy("127.0.0.2")).empty());
}

TEST_CASE("plan_forwards: closes what went away, opens what is new, retargets what moved") {
  std::map<std::uint16_t, tcp::endpoint> current{{1, ep("127.0.0.1", 1)}, {2, ep("127.0.0.1", 2)}, {3, ep("::1", 3)}};
  std::map<std::uint16_t, tcp::endpoint> want{{2, ep("127.0.0.1", 2)}, {3, ep("127.0.0.1", 3)}, {4, ep("::1", 4)}};
  auto plan = envd::forward::plan_forwards(current, want);
  CHECK(plan.close == std::vector<std::uint16_t>{1});
  REQUIRE(plan.open.size() == 1);
  CHECK(plan.open[0].first == 4);
  REQUIRE(plan.retarget.size() == 1);
  CHECK(plan.retarget[0].second == ep("127.0.0.1", 3));
  auto none = envd::forward::plan_forwards(want, want);
  CHECK((none.close.empty() && none.open.empty() && none.retarget.empty()));
}

// ---------------------------------------------------------------------------------------------
// The Forwarder fed scans by hand, forwarding to 127.0.0.2 (on the loopback interface, like the
// e2e tests): listeners and relays are real, the scans are not.

namespace {

struct Service {
  int fd = -1;
  std::uint16_t port = 0;
  Service() {
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    socklen_t len = sizeof sa;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
    port = ntohs(sa.sin_port);
  }
  ~Service() { ::close(fd); }
  Listener listener() const { return Listener::v4("127.0.0.1", port); }
};

// A non-blocking connect to addr:port; returns the fd (connected or in progress) or -1 at once
// when refused.
int connect_to(const char* addr, std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, addr, &sa.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

bool run_until(asio::io_context& io, const std::function<bool()>& done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    io.run_one_for(std::chrono::milliseconds(5));
  }
  return true;
}

envd::forward::ForwardConfig test_config(const char* address = "127.0.0.2") {
  envd::forward::ForwardConfig c;
  c.address = address;
  c.fd_reserve = 16;
  return c;
}

}  // namespace

TEST_CASE("Forwarder: a scanned loopback service gets a forward that relays, and loses it when it goes") {
  std::signal(SIGPIPE, SIG_IGN);
  asio::io_context io;
  Service svc;
  envd::forward::Forwarder fwd(io.get_executor(), test_config());
  REQUIRE(fwd.validate().empty());
  fwd.apply({svc.listener()});
  REQUIRE(fwd.forwards().count(svc.port) == 1);
  CHECK(fwd.local_endpoint(svc.port) == ep("127.0.0.2", svc.port));

  int c = connect_to("127.0.0.2", svc.port);
  REQUIRE(c >= 0);
  REQUIRE(::write(c, "ping", 4) == 4);
  int s = -1;
  REQUIRE(run_until(io, [&] { return (s = ::accept4(svc.fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; }));
  char buf[8] = {};
  REQUIRE(run_until(io, [&] { return ::recv(s, buf, sizeof buf, MSG_DONTWAIT) == 4; }));
  CHECK(std::string(buf, 4) == "ping");
  REQUIRE(::write(s, "pong", 4) == 4);
  REQUIRE(run_until(io, [&] { return ::recv(c, buf, sizeof buf, MSG_DONTWAIT) == 4; }));
  CHECK(std::string(buf, 4) == "pong");
  CHECK(fwd.connections() == 1);

  // The same scan again changes nothing (the forward's own listener is not forwarded again).
  fwd.apply({svc.listener()});
  CHECK(fwd.forwards().size() == 1);

  // The service went away: the forward closes; the relayed connection runs on until it ends.
  fwd.apply({});
  CHECK(fwd.forwards().empty());
  CHECK(connect_to("127.0.0.2", svc.port) == -1);  // refused
  ::close(s);
  ::close(c);
  REQUIRE(run_until(io, [&] { return fwd.connections() == 0; }));
}

TEST_CASE("Forwarder: a real scan shows the forward's own listener on the external address; the forward stays") {
  asio::io_context io;
  Service svc;
  envd::forward::Forwarder fwd(io.get_executor(), test_config());
  fwd.apply({svc.listener()});
  REQUIRE(fwd.forwards().count(svc.port) == 1);
  for (int i = 0; i < 3; ++i) {
    std::vector<Listener> scan;
    REQUIRE(envd::forward::list_tcp_listeners(scan) == 0);
    // The scan holds 127.0.0.2:<port>, which would count as "already served on the external
    // address" if it were not recognised as the forward's own socket.
    CHECK(std::count_if(scan.begin(), scan.end(),
                        [&](const Listener& l) { return l.port == svc.port && l.address() == "127.0.0.2"; }) == 1);
    scan.erase(std::remove_if(scan.begin(), scan.end(), [&](const Listener& l) { return l.port != svc.port; }),
               scan.end());
    fwd.apply(scan);
    CHECK(fwd.forwards().count(svc.port) == 1);
  }
}

TEST_CASE("Forwarder: envd's own listener is never forwarded") {
  asio::io_context io;
  Service svc;
  struct stat st {};
  REQUIRE(::fstat(svc.fd, &st) == 0);
  envd::forward::Forwarder fwd(io.get_executor(), test_config());
  fwd.add_own_inode(st.st_ino);
  fwd.apply({Listener::v4("127.0.0.1", svc.port, st.st_ino)});
  CHECK(fwd.forwards().empty());
}

TEST_CASE("Forwarder: a taken external port is retried at later scans; a missing address is retried too") {
  asio::io_context io;
  Service svc;
  // Someone else holds 127.0.0.2:<port>.
  int squatter = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(svc.port);
  ::inet_pton(AF_INET, "127.0.0.2", &sa.sin_addr);
  REQUIRE(::bind(squatter, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(squatter, 1) == 0);
  envd::forward::Forwarder fwd(io.get_executor(), test_config());
  fwd.apply({svc.listener()});  // the squatter is not in this scan: it is someone else's
  CHECK(fwd.forwards().empty());
  fwd.apply({svc.listener()});
  CHECK(fwd.forwards().empty());
  ::close(squatter);
  fwd.apply({svc.listener()});
  CHECK(fwd.forwards().count(svc.port) == 1);

  // 198.51.100.1 (TEST-NET-2) is on no interface: no forward, no crash, tried again each scan.
  envd::forward::Forwarder missing(io.get_executor(), test_config("198.51.100.1"));
  missing.apply({svc.listener()});
  missing.apply({svc.listener()});
  CHECK(missing.forwards().empty());
}

TEST_CASE("Forwarder: an empty or invalid address") {
  asio::io_context io;
  Service svc;
  envd::forward::Forwarder off(io.get_executor(), test_config(""));
  CHECK(off.validate().empty());
  off.apply({svc.listener()});
  CHECK(off.forwards().empty());
  CHECK_FALSE(envd::forward::Forwarder(io.get_executor(), test_config("not-an-ip")).validate().empty());
  CHECK_FALSE(envd::forward::Forwarder(io.get_executor(), test_config("0.0.0.0")).validate().empty());
}

TEST_CASE("Forwarder: at the per-forward cap new clients wait in the backlog until a connection ends") {
  asio::io_context io;
  Service svc;
  auto cfg = test_config();
  cfg.max_connections_per_forward = 1;
  envd::forward::Forwarder fwd(io.get_executor(), cfg);
  fwd.apply({svc.listener()});
  REQUIRE(fwd.forwards().size() == 1);
  int c1 = connect_to("127.0.0.2", svc.port);
  REQUIRE(c1 >= 0);
  int s1 = -1;
  REQUIRE(run_until(io, [&] { return (s1 = ::accept4(svc.fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; }));
  int c2 = connect_to("127.0.0.2", svc.port);  // completes in the kernel's backlog
  REQUIRE(c2 >= 0);
  io.run_for(std::chrono::milliseconds(100));
  CHECK(fwd.connections() == 1);
  CHECK(::accept4(svc.fd, nullptr, nullptr, SOCK_CLOEXEC) == -1);  // not relayed yet
  ::close(c1);
  ::close(s1);
  int s2 = -1;
  REQUIRE(run_until(io, [&] { return (s2 = ::accept4(svc.fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; }));
  CHECK(fwd.connections() == 1);
  ::close(c2);
  ::close(s2);
  REQUIRE(run_until(io, [&] { return fwd.connections() == 0; }));
}

TEST_CASE("Forwarder: the global cap holds every forward, and the fd reserve refuses connections") {
  asio::io_context io;
  Service a, b;
  auto cfg = test_config();
  cfg.max_connections = 1;
  envd::forward::Forwarder fwd(io.get_executor(), cfg);
  fwd.apply({a.listener(), b.listener()});
  REQUIRE(fwd.forwards().size() == 2);
  int c1 = connect_to("127.0.0.2", a.port);
  int s1 = -1;
  REQUIRE(run_until(io, [&] { return (s1 = ::accept4(a.fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; }));
  int c2 = connect_to("127.0.0.2", b.port);
  io.run_for(std::chrono::milliseconds(100));
  CHECK(::accept4(b.fd, nullptr, nullptr, SOCK_CLOEXEC) == -1);
  ::close(c1);
  ::close(s1);
  int s2 = -1;
  REQUIRE(run_until(io, [&] { return (s2 = ::accept4(b.fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; }));
  ::close(c2);
  ::close(s2);
  REQUIRE(run_until(io, [&] { return fwd.connections() == 0; }));

  // A reserve as large as the limit: every forwarded connection is refused (closed), none relayed.
  auto tight = test_config();
  tight.fd_reserve = 1u << 30;
  envd::forward::Forwarder strict(io.get_executor(), tight);
  Service c;
  strict.apply({c.listener()});
  REQUIRE(strict.forwards().size() == 1);
  int c3 = connect_to("127.0.0.2", c.port);
  REQUIRE(c3 >= 0);
  char x;
  REQUIRE(run_until(io, [&] { return ::recv(c3, &x, 1, MSG_DONTWAIT) == 0; }));  // closed by envd
  CHECK(strict.connections() == 0);
  CHECK(::accept4(c.fd, nullptr, nullptr, SOCK_CLOEXEC) == -1);
  ::close(c3);
}

TEST_CASE("Forwarder: stop() closes forwards and live relays") {
  asio::io_context io;
  Service svc;
  envd::forward::Forwarder fwd(io.get_executor(), test_config());
  fwd.apply({svc.listener()});
  int c = connect_to("127.0.0.2", svc.port);
  int s = -1;
  REQUIRE(run_until(io, [&] { return (s = ::accept4(svc.fd, nullptr, nullptr, SOCK_CLOEXEC)) >= 0; }));
  REQUIRE(run_until(io, [&] { return fwd.connections() == 1; }));
  fwd.stop();
  CHECK(fwd.forwards().empty());
  CHECK(fwd.connections() == 0);
  char x;
  CHECK(::read(s, &x, 1) <= 0);
  ::close(s);
  ::close(c);
  io.run_for(std::chrono::milliseconds(20));  // cancelled handlers run and find nothing to do
}
