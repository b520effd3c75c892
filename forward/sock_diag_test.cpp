#include "forward/sock_diag.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <vector>

using envd::forward::Listener;

namespace {

// Appends one SOCK_DIAG_BY_FAMILY message as the kernel writes it.
void add_msg(std::vector<char>& buf, int family, const char* addr, std::uint16_t port, std::uint32_t inode,
             std::uint8_t state = TCP_LISTEN, int v6only = -1) {
  std::size_t attr = v6only >= 0 ? RTA_SPACE(1) : 0;
  std::size_t len = NLMSG_LENGTH(NLMSG_ALIGN(sizeof(inet_diag_msg)) + attr);
  std::size_t off = buf.size();
  buf.resize(off + NLMSG_ALIGN(len));
  auto* h = reinterpret_cast<nlmsghdr*>(buf.data() + off);
  h->nlmsg_len = static_cast<std::uint32_t>(len);
  h->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  auto* m = static_cast<inet_diag_msg*>(NLMSG_DATA(h));
  m->idiag_family = static_cast<std::uint8_t>(family);
  m->idiag_state = state;
  m->id.idiag_sport = htons(port);
  ::inet_pton(family, addr, m->id.idiag_src);
  m->idiag_inode = inode;
  if (v6only >= 0) {
    auto* a = reinterpret_cast<rtattr*>(reinterpret_cast<char*>(m) + NLMSG_ALIGN(sizeof(*m)));
    a->rta_type = INET_DIAG_SKV6ONLY;
    a->rta_len = RTA_LENGTH(1);
    *static_cast<std::uint8_t*>(RTA_DATA(a)) = static_cast<std::uint8_t>(v6only);
  }
}

void add_done(std::vector<char>& buf) {
  std::size_t off = buf.size();
  buf.resize(off + NLMSG_ALIGN(NLMSG_LENGTH(sizeof(int))));
  auto* h = reinterpret_cast<nlmsghdr*>(buf.data() + off);
  h->nlmsg_len = NLMSG_LENGTH(sizeof(int));
  h->nlmsg_type = NLMSG_DONE;
}

// A TCP socket bound to addr:0 (the kernel picks the port) and listening.
int listen_on(int family, const char* addr, std::uint16_t& port) {
  int fd = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_storage ss{};
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* s = reinterpret_cast<sockaddr_in*>(&ss);
    s->sin_family = AF_INET;
    ::inet_pton(AF_INET, addr, &s->sin_addr);
    len = sizeof *s;
  } else {
    auto* s = reinterpret_cast<sockaddr_in6*>(&ss);
    s->sin6_family = AF_INET6;
    ::inet_pton(AF_INET6, addr, &s->sin6_addr);
    len = sizeof *s;
  }
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0 || ::listen(fd, 8) != 0) {
    ::close(fd);
    return -1;
  }
  len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&ss)->sin_port
                                 : reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  return fd;
}

std::uint64_t inode_of(int fd) {
  struct stat st {};
  ::fstat(fd, &st);
  return st.st_ino;
}

const Listener* find(const std::vector<Listener>& v, std::uint64_t inode) {
  auto it = std::find_if(v.begin(), v.end(), [inode](const Listener& l) { return l.inode == inode; });
  return it == v.end() ? nullptr : &*it;
}

}  // namespace

TEST_CASE("sock_diag: a reply of IPv4 and IPv6 listeners parses into address, port, inode and V6ONLY") {
  std::vector<char> buf;
  add_msg(buf, AF_INET, "127.0.0.1", 8000, 11);
  add_msg(buf, AF_INET6, "::1", 8001, 12, TCP_LISTEN, 1);
  add_msg(buf, AF_INET6, "::", 8002, 13, TCP_LISTEN, 0);
  add_msg(buf, AF_INET, "10.0.0.1", 8003, 14, TCP_ESTABLISHED);  // not a listener: skipped
  std::vector<Listener> out;
  CHECK(envd::forward::parse_diag_reply(buf.data(), buf.size(), out) == 0);  // no DONE yet
  REQUIRE(out.size() == 3);
  CHECK(out[0].family == AF_INET);
  CHECK(out[0].address() == "127.0.0.1");
  CHECK(out[0].port == 8000);
  CHECK(out[0].inode == 11);
  CHECK(out[1].address() == "::1");
  CHECK(out[1].v6only);
  CHECK(out[2].address() == "::");
  CHECK_FALSE(out[2].v6only);
  buf.clear();
  add_done(buf);
  CHECK(envd::forward::parse_diag_reply(buf.data(), buf.size(), out) == 1);
}

TEST_CASE("sock_diag: NLMSG_ERROR and truncated messages are errors") {
  std::vector<char> buf(NLMSG_ALIGN(NLMSG_LENGTH(sizeof(nlmsgerr))));
  auto* h = reinterpret_cast<nlmsghdr*>(buf.data());
  h->nlmsg_len = NLMSG_LENGTH(sizeof(nlmsgerr));
  h->nlmsg_type = NLMSG_ERROR;
  static_cast<nlmsgerr*>(NLMSG_DATA(h))->error = -EPERM;
  std::vector<Listener> out;
  CHECK(envd::forward::parse_diag_reply(buf.data(), buf.size(), out) == -EPERM);

  std::vector<char> short_msg(NLMSG_LENGTH(8));
  h = reinterpret_cast<nlmsghdr*>(short_msg.data());
  h->nlmsg_len = NLMSG_LENGTH(8);
  h->nlmsg_type = SOCK_DIAG_BY_FAMILY;
  CHECK(envd::forward::parse_diag_reply(short_msg.data(), short_msg.size(), out) == -EBADMSG);
  CHECK(out.empty());
}

TEST_CASE("sock_diag: the kernel lists our listeners (IPv4, IPv6) with their inodes, and not a connection") {
  std::uint16_t p4 = 0, p6 = 0;
  int l4 = listen_on(AF_INET, "127.0.0.1", p4);
  REQUIRE(l4 >= 0);
  int l6 = listen_on(AF_INET6, "::1", p6);  // -1 on a machine without IPv6 loopback
  // A connection to l4: its two ends are not listeners.
  int c = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(p4);
  ::inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  REQUIRE(::connect(c, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  int a = ::accept4(l4, nullptr, nullptr, SOCK_CLOEXEC);
  REQUIRE(a >= 0);

  std::vector<Listener> out;
  REQUIRE(envd::forward::list_tcp_listeners(out) == 0);
  const Listener* f4 = find(out, inode_of(l4));
  REQUIRE(f4 != nullptr);
  CHECK(f4->family == AF_INET);
  CHECK(f4->address() == "127.0.0.1");
  CHECK(f4->port == p4);
  CHECK(find(out, inode_of(c)) == nullptr);
  CHECK(find(out, inode_of(a)) == nullptr);
  if (l6 >= 0) {
    const Listener* f6 = find(out, inode_of(l6));
    REQUIRE(f6 != nullptr);
    CHECK(f6->family == AF_INET6);
    CHECK(f6->address() == "::1");
    CHECK(f6->port == p6);
    ::close(l6);
  }
  auto gone = inode_of(l4);
  ::close(a);
  ::close(c);
  ::close(l4);
  REQUIRE(envd::forward::list_tcp_listeners(out) == 0);
  CHECK(find(out, gone) == nullptr);
}
