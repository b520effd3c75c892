#pragma once
// Readiness and liveness notifications to the service manager (systemd's sd_notify protocol, in a
// few lines: no libsystemd). When systemd starts envd as a Type=notify service it sets
// $NOTIFY_SOCKET to an AF_UNIX datagram socket (an absolute path, or an abstract name written with
// a leading '@'); envd sends "READY=1" once it is listening, "STOPPING=1" when a graceful shutdown
// begins and, when systemd's watchdog is on ($WATCHDOG_USEC, for this pid per $WATCHDOG_PID),
// "WATCHDOG=1" every half period from its event loop, so a wedged loop gets envd restarted.
// Without $NOTIFY_SOCKET (a shell, a container, OpenRC) nothing is sent.
//
// Sends never block: the socket is non-blocking and a full receiver queue (EAGAIN) loses that one
// message. The variables stay in envd's own environment; the processes envd starts never see them
// (their environment is built from scratch, contract §3.1).
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace envd::notify {

class Notifier {
 public:
  Notifier() = default;  // disabled: send() does nothing
  Notifier(const Notifier&) = delete;
  Notifier& operator=(const Notifier&) = delete;
  Notifier(Notifier&& o) noexcept;
  Notifier& operator=(Notifier&& o) noexcept;
  ~Notifier();

  // A notifier for the value of $NOTIFY_SOCKET. Null or empty → disabled, no error. A value that is
  // not an absolute path or '@' name, or too long for sun_path, or a socket() failure → disabled
  // and `error` says why.
  static Notifier open(const char* notify_socket, std::string& error);

  bool enabled() const { return fd_ >= 0; }
  // Sends one datagram (e.g. "READY=1"). Returns 0, or the errno of the failure (EAGAIN when the
  // receiver's queue is full, ECONNREFUSED/ENOENT when nobody listens). Disabled → 0.
  int send(std::string_view state) const;

 private:
  int fd_ = -1;
  sockaddr_un addr_{};
  socklen_t addr_len_ = 0;
};

// The interval at which to send WATCHDOG=1: half of $WATCHDOG_USEC, when it is a positive integer
// and $WATCHDOG_PID is unset or equal to `self`. Otherwise nullopt (no watchdog).
std::optional<std::chrono::microseconds> watchdog_interval(const char* watchdog_usec, const char* watchdog_pid,
                                                           pid_t self);

}  // namespace envd::notify
