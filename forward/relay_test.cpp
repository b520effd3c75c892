#include "forward/relay.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <functional>
#include <optional>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

namespace asio = boost::asio;
using asio::ip::tcp;
using envd::forward::Relay;
using envd::forward::RelayStats;

namespace {

std::size_t open_fds() {
  std::size_t n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  while (dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
  ::closedir(d);
  return n - 1;  // the DIR's own fd
}

int listen_loopback(std::uint16_t& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  socklen_t len = sizeof sa;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len);
  port = ntohs(sa.sin_port);
  return fd;
}

int connect_loopback(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

char pattern(std::size_t i, char salt) { return static_cast<char>((i * 31 + static_cast<std::size_t>(salt)) & 0xff); }

bool write_pattern(int fd, std::size_t total, char salt) {
  std::vector<char> buf(64 * 1024);
  for (std::size_t off = 0; off < total;) {
    std::size_t n = std::min(buf.size(), total - off);
    for (std::size_t i = 0; i < n; ++i) buf[i] = pattern(off + i, salt);
    ssize_t w = ::write(fd, buf.data(), n);
    if (w <= 0) return false;
    off += static_cast<std::size_t>(w);
  }
  return true;
}

// Reads to EOF (or an error); returns the count, and whether every byte matched the pattern.
std::pair<std::size_t, bool> read_pattern(int fd, char salt) {
  std::vector<char> buf(64 * 1024);
  std::size_t total = 0;
  bool ok = true;
  for (;;) {
    ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i)
      ok = ok && buf[static_cast<std::size_t>(i)] == pattern(total + static_cast<std::size_t>(i), salt);
    total += static_cast<std::size_t>(n);
  }
  return {total, ok};
}

// A front listener whose first accepted connection is relayed to `target`, on one io_context.
struct Rig {
  asio::io_context io;
  tcp::acceptor front{io, tcp::endpoint(asio::ip::address_v4::loopback(), 0)};
  std::shared_ptr<Relay> relay;
  std::optional<RelayStats> stats;

  std::uint16_t port() const { return front.local_endpoint().port(); }
  void relay_to(std::uint16_t target_port) {
    front.async_accept([this, target_port](const boost::system::error_code& ec, tcp::socket s) {
      REQUIRE_FALSE(ec);
      relay = Relay::create(std::move(s), [this](const RelayStats& st) { stats = st; });
      relay->start(tcp::endpoint(asio::ip::address_v4::loopback(), target_port));
    });
  }
  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io.run_one_for(std::chrono::milliseconds(10));
    }
    return true;
  }
};

}  // namespace

TEST_CASE("relay: bytes both ways, the client's half-close reaches the service, clean end closes every fd") {
  std::signal(SIGPIPE, SIG_IGN);
  std::size_t fds_before = open_fds();
  {
    std::uint16_t sport = 0;
    int sl = listen_loopback(sport);
    Rig rig;
    rig.relay_to(sport);
    constexpr std::size_t kUp = 5u << 20, kDown = 3u << 20;
    std::atomic<bool> service_done{false}, client_done{false};
    std::pair<std::size_t, bool> service_got, client_got;
    std::thread service([&] {
      int s = ::accept4(sl, nullptr, nullptr, SOCK_CLOEXEC);
      service_got = read_pattern(s, 'u');  // until the client's SHUT_WR arrives as EOF
      write_pattern(s, kDown, 'd');
      ::close(s);
      service_done = true;
    });
    std::thread client([&, port = rig.port()] {
      int c = connect_loopback(port);
      write_pattern(c, kUp, 'u');
      ::shutdown(c, SHUT_WR);
      client_got = read_pattern(c, 'd');
      ::close(c);
      client_done = true;
    });
    bool ended = rig.run_until([&] { return rig.stats.has_value() && service_done && client_done; });
    service.join();
    client.join();
    REQUIRE(ended);
    CHECK(service_got.first == kUp);
    CHECK(service_got.second);
    CHECK(client_got.first == kDown);
    CHECK(client_got.second);
    CHECK(rig.stats->to_service == kUp);
    CHECK(rig.stats->to_client == kDown);
    CHECK(rig.stats->error == 0);
    CHECK(rig.relay->ended());
    ::close(sl);
  }
  CHECK(open_fds() == fds_before);
}

TEST_CASE("relay: nothing listening on the target → the client is closed, the relay ends with ECONNREFUSED") {
  std::size_t fds_before = open_fds();
  {
    std::uint16_t dead = 0;
    ::close(listen_loopback(dead));  // a port nobody listens on now
    Rig rig;
    rig.relay_to(dead);
    int c = connect_loopback(rig.port());
    REQUIRE(c >= 0);
    REQUIRE(rig.run_until([&] { return rig.stats.has_value(); }));
    CHECK(rig.stats->error == ECONNREFUSED);
    char b;
    CHECK(::read(c, &b, 1) <= 0);  // EOF or reset
    ::close(c);
  }
  CHECK(open_fds() == fds_before);
}

TEST_CASE("relay: a service that resets ends the relay and the client sees the end") {
  std::size_t fds_before = open_fds();
  {
    std::uint16_t sport = 0;
    int sl = listen_loopback(sport);
    Rig rig;
    rig.relay_to(sport);
    int c = connect_loopback(rig.port());
    REQUIRE(c >= 0);
    REQUIRE(::write(c, "hello", 5) == 5);
    ::fcntl(sl, F_SETFL, O_NONBLOCK);
    int s = -1;
    REQUIRE(rig.run_until([&] {
      s = ::accept4(sl, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      return s >= 0;
    }));
    linger lg{1, 0};
    ::setsockopt(s, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    ::close(s);  // RST
    std::thread client([c] {
      char b[16];
      while (::read(c, b, sizeof b) > 0) {
      }
      ::close(c);
    });
    bool ended = rig.run_until([&] { return rig.stats.has_value(); });
    client.join();
    REQUIRE(ended);
    ::close(sl);
  }
  CHECK(open_fds() == fds_before);
}

TEST_CASE("relay: a service that does not read stops the client (bounded buffering), then everything arrives") {
  std::size_t fds_before = open_fds();
  {
    std::uint16_t sport = 0;
    int sl = listen_loopback(sport);
    Rig rig;
    rig.relay_to(sport);
    int c = connect_loopback(rig.port());
    REQUIRE(c >= 0);
    ::fcntl(c, F_SETFL, ::fcntl(c, F_GETFL) | O_NONBLOCK);
    std::vector<char> buf(64 * 1024);
    std::size_t written = 0;
    int idle_rounds = 0;
    while (idle_rounds < 20 && written < (256u << 20)) {
      bool progress = false;
      for (;;) {
        for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = pattern(written + i, 'b');
        ssize_t n = ::write(c, buf.data(), buf.size());
        if (n <= 0) break;
        written += static_cast<std::size_t>(n);
        progress = true;
      }
      rig.io.run_for(std::chrono::milliseconds(5));
      idle_rounds = progress ? 0 : idle_rounds + 1;
    }
    // Socket buffers and one pipe hold what the client could write: far below 256 MiB.
    CHECK(written < (64u << 20));
    CHECK(rig.relay);
    CHECK_FALSE(rig.stats.has_value());
    std::pair<std::size_t, bool> got;
    std::thread service([&] {
      int s = ::accept4(sl, nullptr, nullptr, SOCK_CLOEXEC);
      got = read_pattern(s, 'b');
      ::close(s);
    });
    ::shutdown(c, SHUT_WR);
    bool ended = rig.run_until([&] { return rig.stats.has_value(); });
    service.join();
    REQUIRE(ended);
    CHECK(got.first == written);
    CHECK(got.second);
    ::close(c);
    ::close(sl);
  }
  CHECK(open_fds() == fds_before);
}

TEST_CASE("relay: close() in the middle of a transfer closes both sides and every fd") {
  std::size_t fds_before = open_fds();
  {
    std::uint16_t sport = 0;
    int sl = listen_loopback(sport);
    Rig rig;
    rig.relay_to(sport);
    int c = connect_loopback(rig.port());
    REQUIRE(c >= 0);
    REQUIRE(::write(c, "x", 1) == 1);
    ::fcntl(sl, F_SETFL, O_NONBLOCK);
    int s = -1;
    REQUIRE(rig.run_until([&] {
      s = ::accept4(sl, nullptr, nullptr, SOCK_CLOEXEC);
      return s >= 0;
    }));
    char b[8];
    REQUIRE(rig.run_until([&] { return ::recv(s, b, 1, MSG_DONTWAIT) == 1; }));  // relayed
    rig.relay->close();
    REQUIRE(rig.stats.has_value());
    CHECK(rig.stats->error == ECANCELED);
    CHECK(::read(s, b, 1) <= 0);  // the service sees the end
    CHECK(::read(c, b, 1) <= 0);  // and so does the client
    ::close(s);
    ::close(c);
    ::close(sl);
  }
  CHECK(open_fds() == fds_before);
}
