#include "envd/notify.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include <doctest/doctest.h>

using envd::notify::Notifier;
using envd::notify::watchdog_interval;

namespace {

// A datagram socket bound to `name` (a path, or '@' for an abstract name), as a service manager's.
struct Receiver {
  int fd = -1;
  std::string path;  // unlinked at the end (paths only)
  explicit Receiver(const std::string& name) {
    fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name.data(), name.size());
    socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    if (name[0] == '@') {
      a.sun_path[0] = '\0';
    } else {
      path = name;
      ::unlink(name.c_str());
      len += 1;
    }
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), len) == 0);
  }
  ~Receiver() {
    ::close(fd);
    if (!path.empty()) ::unlink(path.c_str());
  }
  // The next datagram, or "" if none is queued.
  std::string next() const {
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? std::string() : std::string(buf, static_cast<std::size_t>(n));
  }
};

std::string temp_socket_path() {
  char dir[] = "/tmp/envd-notify-XXXXXX";
  REQUIRE(::mkdtemp(dir) != nullptr);
  return std::string(dir) + "/notify";
}

}  // namespace

TEST_CASE("notify: no NOTIFY_SOCKET, nothing to do") {
  std::string err;
  Notifier n = Notifier::open(nullptr, err);
  CHECK_FALSE(n.enabled());
  CHECK(err.empty());
  CHECK(n.send("READY=1") == 0);
  n = Notifier::open("", err);
  CHECK_FALSE(n.enabled());
  CHECK(err.empty());
}

TEST_CASE("notify: unusable NOTIFY_SOCKET values are reported, not used") {
  std::string err;
  CHECK_FALSE(Notifier::open("relative/path", err).enabled());
  CHECK(err.find("neither an absolute path nor an abstract") != std::string::npos);
  CHECK_FALSE(Notifier::open("vsock:2:1234", err).enabled());
  CHECK_FALSE(err.empty());
  CHECK_FALSE(Notifier::open("@", err).enabled());
  CHECK_FALSE(err.empty());
  std::string long_path = "/" + std::string(sizeof(sockaddr_un::sun_path), 'x');
  CHECK_FALSE(Notifier::open(long_path.c_str(), err).enabled());
  CHECK(err.find("not a usable socket address") != std::string::npos);
}

TEST_CASE("notify: datagrams reach a socket bound at a path") {
  std::string path = temp_socket_path();
  {
    Receiver r(path);
    std::string err;
    Notifier n = Notifier::open(path.c_str(), err);
    REQUIRE(n.enabled());
    CHECK(err.empty());
    CHECK(n.send("READY=1") == 0);
    CHECK(n.send("STOPPING=1") == 0);
    CHECK(r.next() == "READY=1");
    CHECK(r.next() == "STOPPING=1");
    CHECK(r.next() == "");
  }
  ::rmdir(path.substr(0, path.rfind('/')).c_str());
}

TEST_CASE("notify: '@' names an abstract socket") {
  std::string name = "@envd-notify-test-" + std::to_string(::getpid());
  Receiver r(name);
  std::string err;
  Notifier n = Notifier::open(name.c_str(), err);
  REQUIRE(n.enabled());
  CHECK(n.send("WATCHDOG=1") == 0);
  CHECK(r.next() == "WATCHDOG=1");
  // The same name as a path is another address: nothing listens there.
  std::string err2;
  Notifier wrong = Notifier::open(("/" + name.substr(1)).c_str(), err2);
  CHECK(wrong.send("READY=1") != 0);
  CHECK(r.next() == "");
}

TEST_CASE("notify: nobody listening is an error code, not a hang or a signal") {
  std::string path = temp_socket_path();
  std::string err;
  Notifier n = Notifier::open(path.c_str(), err);
  REQUIRE(n.enabled());
  int e = n.send("READY=1");
  CHECK((e == ENOENT || e == ECONNREFUSED));
  ::rmdir(path.substr(0, path.rfind('/')).c_str());
}

TEST_CASE("notify: a full receiver queue gives EAGAIN instead of blocking") {
  std::string path = temp_socket_path();
  {
    Receiver r(path);
    std::string err;
    Notifier n = Notifier::open(path.c_str(), err);
    REQUIRE(n.enabled());
    int e = 0;
    int sent = 0;
    // The receiver never reads: its queue (net.unix.max_dgram_qlen, a few hundred) fills up.
    while (sent < 1'000'000 && (e = n.send("WATCHDOG=1")) == 0) ++sent;
    CHECK(e == EAGAIN);
    CHECK(sent > 0);
    CHECK(r.next() == "WATCHDOG=1");
  }
  ::rmdir(path.substr(0, path.rfind('/')).c_str());
}

TEST_CASE("notify: a moved-from notifier is disabled and the fd is closed once") {
  std::string err;
  std::string name = "@envd-notify-move-" + std::to_string(::getpid());
  Receiver r(name);
  Notifier a = Notifier::open(name.c_str(), err);
  Notifier b(std::move(a));
  CHECK_FALSE(a.enabled());
  CHECK(b.enabled());
  CHECK(a.send("READY=1") == 0);
  CHECK(r.next() == "");
  CHECK(b.send("READY=1") == 0);
  CHECK(r.next() == "READY=1");
}

TEST_CASE("notify: watchdog interval from WATCHDOG_USEC and WATCHDOG_PID") {
  using std::chrono::microseconds;
  CHECK_FALSE(watchdog_interval(nullptr, nullptr, 42).has_value());
  CHECK_FALSE(watchdog_interval("", nullptr, 42).has_value());
  CHECK_FALSE(watchdog_interval("0", nullptr, 42).has_value());
  CHECK_FALSE(watchdog_interval("-5", nullptr, 42).has_value());
  CHECK_FALSE(watchdog_interval("10s", nullptr, 42).has_value());
  CHECK(watchdog_interval("30000000", nullptr, 42) == microseconds(15000000));
  CHECK(watchdog_interval("30000000", "", 42) == microseconds(15000000));
  CHECK(watchdog_interval("200000", "42", 42) == microseconds(100000));
  CHECK_FALSE(watchdog_interval("200000", "43", 42).has_value());  // meant for another process
  CHECK_FALSE(watchdog_interval("200000", "x", 42).has_value());
  CHECK(watchdog_interval("1", nullptr, 42) == microseconds(1));
  CHECK(watchdog_interval("18446744073709551615", nullptr, 42) == microseconds(86'400'000'000));
  CHECK_FALSE(watchdog_interval("18446744073709551616", nullptr, 42).has_value());
}
