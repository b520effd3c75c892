#include "forward/sock_diag.h"

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace envd::forward {

Listener Listener::v4(const std::string& addr, std::uint16_t port, std::uint64_t inode) {
  Listener l;
  l.family = AF_INET;
  ::inet_pton(AF_INET, addr.c_str(), l.addr.data());
  l.port = port;
  l.inode = inode;
  return l;
}

Listener Listener::v6(const std::string& addr, std::uint16_t port, std::uint64_t inode, bool v6only) {
  Listener l;
  l.family = AF_INET6;
  ::inet_pton(AF_INET6, addr.c_str(), l.addr.data());
  l.port = port;
  l.inode = inode;
  l.v6only = v6only;
  return l;
}

std::string Listener::address() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(family, addr.data(), buf, sizeof buf);
  return buf;
}

int parse_diag_reply(const void* data, std::size_t len, std::vector<Listener>& out) {
  // The NLMSG_* macros do signed/unsigned arithmetic on an int length.
  int remaining = static_cast<int>(len);
  for (auto* h = static_cast<const nlmsghdr*>(data); NLMSG_OK(h, remaining); h = NLMSG_NEXT(h, remaining)) {
    if (h->nlmsg_type == NLMSG_DONE) return 1;
    if (h->nlmsg_type == NLMSG_ERROR) {
      if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) return -EBADMSG;
      const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
      return e->error < 0 ? e->error : -EPROTO;
    }
    if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY) continue;
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) return -EBADMSG;
    const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
    if (m->idiag_state != TCP_LISTEN) continue;  // the kernel filters; be strict anyway
    Listener l;
    l.family = m->idiag_family;
    if (l.family == AF_INET) {
      std::memcpy(l.addr.data(), m->id.idiag_src, 4);
    } else if (l.family == AF_INET6) {
      std::memcpy(l.addr.data(), m->id.idiag_src, 16);
    } else {
      continue;
    }
    l.port = ntohs(m->id.idiag_sport);
    l.inode = m->idiag_inode;
    // Attributes: INET_DIAG_SKV6ONLY comes with every AF_INET6 socket.
    auto attr_len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(inet_diag_msg)));
    for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(m) + NLMSG_ALIGN(sizeof(*m)));
         RTA_OK(a, attr_len); a = RTA_NEXT(a, attr_len)) {
      if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1) {
        l.v6only = *static_cast<const std::uint8_t*>(RTA_DATA(a)) != 0;
      }
    }
    out.push_back(l);
  }
  return 0;
}

namespace {

int dump_family(int fd, std::uint8_t family, std::uint32_t seq, std::vector<Listener>& out) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof msg;
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  msg.nlh.nlmsg_seq = seq;
  msg.req.sdiag_family = family;
  msg.req.sdiag_protocol = IPPROTO_TCP;
  msg.req.idiag_states = 1u << TCP_LISTEN;  // LISTEN only: the kernel skips the established hash
  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(fd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0) return errno;
  // 8 KiB holds ~80 listeners per read; the kernel fills each read as it is made.
  alignas(nlmsghdr) char buf[8 * 1024];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) return EPROTO;
    int r = parse_diag_reply(buf, static_cast<std::size_t>(n), out);
    if (r < 0) return -r;
    if (r == 1) return 0;
  }
}

}  // namespace

int list_tcp_listeners(std::vector<Listener>& out) {
  out.clear();
  int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return errno;
  // A dump is answered within the recv that asks for it; the timeout only guards against a kernel
  // that never ends one (the scan runs on envd's loop).
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int err = dump_family(fd, AF_INET, 1, out);
  if (err == 0) {
    err = dump_family(fd, AF_INET6, 2, out);
    // A kernel without IPv6 has no IPv6 listeners either.
    if (err == EAFNOSUPPORT || err == ENOENT) err = 0;
  }
  ::close(fd);
  return err;
}

}  // namespace envd::forward
