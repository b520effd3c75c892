#pragma once
// TCP listeners of this network namespace, read with NETLINK_SOCK_DIAG (inet_diag) rather than by
// walking every process's /proc/<pid>/fd as envd's gopsutil scan does (contract §7.5). The request
// asks for the LISTEN state only (idiag_states), so the kernel walks its listening hash and never
// the established connections: the cost grows with listeners, not with connections.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace envd::forward {

struct Listener {
  int family = 0;                       // AF_INET or AF_INET6
  std::array<std::uint8_t, 16> addr{};  // network order; IPv4 in the first 4 bytes
  std::uint16_t port = 0;               // host order
  std::uint64_t inode = 0;              // the socket's inode (as in /proc/<pid>/fd "socket:[N]")
  bool v6only = false;                  // IPV6_V6ONLY on an AF_INET6 listener

  static Listener v4(const std::string& addr, std::uint16_t port, std::uint64_t inode = 0);
  static Listener v6(const std::string& addr, std::uint16_t port, std::uint64_t inode = 0, bool v6only = false);
  std::string address() const;  // textual address, e.g. "127.0.0.1" or "::1"
};

// The TCP sockets in LISTEN state, IPv4 and IPv6. Returns 0 or an errno value (the list is then
// incomplete and must not be used to close forwards).
int list_tcp_listeners(std::vector<Listener>& out);

// Parses one netlink reply buffer (a sequence of nlmsghdr holding inet_diag_msg). Returns 1 when
// NLMSG_DONE was seen, 0 when more is to come, or -errno on NLMSG_ERROR or a malformed message.
// Exposed for the unit tests.
int parse_diag_reply(const void* data, std::size_t len, std::vector<Listener>& out);

}  // namespace envd::forward
