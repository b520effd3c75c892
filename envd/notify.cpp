#include "envd/notify.h"

#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

namespace envd::notify {

Notifier::Notifier(Notifier&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), addr_(o.addr_), addr_len_(std::exchange(o.addr_len_, 0)) {}

Notifier& Notifier::operator=(Notifier&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(o.fd_, -1);
    addr_ = o.addr_;
    addr_len_ = std::exchange(o.addr_len_, 0);
  }
  return *this;
}

Notifier::~Notifier() {
  if (fd_ >= 0) ::close(fd_);
}

Notifier Notifier::open(const char* notify_socket, std::string& error) {
  Notifier n;
  error.clear();
  if (notify_socket == nullptr || *notify_socket == '\0') return n;
  std::string_view v(notify_socket);
  if (v[0] != '/' && v[0] != '@') {
    error = "NOTIFY_SOCKET is neither an absolute path nor an abstract socket name: " + std::string(v);
    return n;
  }
  // A path needs its terminating NUL inside sun_path; an abstract name does not have one.
  const std::size_t room = sizeof(n.addr_.sun_path) - (v[0] == '/' ? 1 : 0);
  if (v.size() > room || (v[0] == '@' && v.size() < 2)) {
    error = "NOTIFY_SOCKET is not a usable socket address: " + std::string(v);
    return n;
  }
  n.addr_.sun_family = AF_UNIX;
  std::memcpy(n.addr_.sun_path, v.data(), v.size());
  if (v[0] == '@') {
    n.addr_.sun_path[0] = '\0';
    n.addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + v.size());
  } else {
    n.addr_len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + v.size() + 1);
  }
  n.fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (n.fd_ < 0) error = std::string("cannot create the notification socket: ") + std::strerror(errno);
  return n;
}

int Notifier::send(std::string_view state) const {
  if (fd_ < 0) return 0;
  for (;;) {
    ssize_t r = ::sendto(fd_, state.data(), state.size(), MSG_DONTWAIT | MSG_NOSIGNAL,
                         reinterpret_cast<const sockaddr*>(&addr_), addr_len_);
    if (r >= 0) return 0;
    if (errno != EINTR) return errno;
  }
}

std::optional<std::chrono::microseconds> watchdog_interval(const char* watchdog_usec, const char* watchdog_pid,
                                                           pid_t self) {
  auto parse = [](const char* s, unsigned long long& out) {
    if (s == nullptr || *s == '\0') return false;
    const char* end = s + std::strlen(s);
    auto [p, ec] = std::from_chars(s, end, out);
    return ec == std::errc() && p == end;
  };
  unsigned long long usec = 0;
  if (!parse(watchdog_usec, usec) || usec == 0) return std::nullopt;
  if (watchdog_pid != nullptr && *watchdog_pid != '\0') {
    unsigned long long pid = 0;
    if (!parse(watchdog_pid, pid) || pid != static_cast<unsigned long long>(self)) return std::nullopt;
  }
  // Half the period, as sd_watchdog_enabled() users do; at least 1 µs, at most a day (a timer
  // never needs more, and the steady clock's arithmetic cannot overflow).
  constexpr unsigned long long kDay = 86'400'000'000ull;
  unsigned long long half = usec / 2;
  if (half == 0) half = 1;
  if (half > kDay) half = kDay;
  return std::chrono::microseconds(half);
}

}  // namespace envd::notify
