#include "forward/forwarder.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "envd/log.h"
#include "forward/relay.h"

namespace envd::forward {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

constexpr const char* kLogger = "port-forwarder";

asio::ip::address_v4 v4_of(const Listener& l) {
  asio::ip::address_v4::bytes_type b;
  std::copy_n(l.addr.begin(), 4, b.begin());
  return asio::ip::address_v4(b);
}

asio::ip::address_v6 v6_of(const Listener& l) {
  asio::ip::address_v6::bytes_type b;
  std::copy_n(l.addr.begin(), 16, b.begin());
  return asio::ip::address_v6(b);
}

std::string errno_text(int err) { return std::strerror(err); }

std::string endpoint_text(const tcp::endpoint& ep) {
  auto a = ep.address();
  return (a.is_v6() ? "[" + a.to_string() + "]" : a.to_string()) + ":" + std::to_string(ep.port());
}

}  // namespace

bool Policy::port_allowed(std::uint16_t port) const {
  if (ports.empty()) return true;
  return std::any_of(ports.begin(), ports.end(),
                     [port](const PortRange& r) { return port >= r.first && port <= r.second; });
}

bool is_loopback(const Listener& l) {
  if (l.family == AF_INET) return v4_of(l).is_loopback();
  if (l.family != AF_INET6) return false;
  auto a = v6_of(l);
  if (a.is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a).is_loopback();
  return a.is_loopback();
}

std::map<std::uint16_t, tcp::endpoint> wanted_forwards(const std::vector<Listener>& scan, const Policy& policy,
                                                       const std::set<std::uint64_t>& own) {
  struct PortState {
    bool covered = false;
    std::optional<asio::ip::address_v4> v4;  // best IPv4 loopback target so far
    bool v6 = false;                         // ::1 listens
  };
  const auto& fwd = policy.address;
  std::map<std::uint16_t, PortState> ports;
  auto consider_v4 = [&](PortState& p, const asio::ip::address_v4& a) {
    if (a.is_unspecified()) {
      if (fwd.is_v4()) p.covered = true;
    } else if (fwd.is_v4() && a == fwd.to_v4()) {
      p.covered = true;
    } else if (a.is_loopback()) {
      // 127.0.0.1 first, else the lowest address (stable whatever the scan's order).
      const auto home = asio::ip::address_v4::loopback();
      if (!p.v4 || (a == home) || (*p.v4 != home && a < *p.v4)) p.v4 = a;
    }
  };
  for (const auto& l : scan) {
    if (own.count(l.inode) != 0 || !policy.port_allowed(l.port)) continue;
    auto& p = ports[l.port];
    if (l.family == AF_INET) {
      consider_v4(p, v4_of(l));
    } else if (l.family == AF_INET6) {
      auto a = v6_of(l);
      if (a.is_unspecified()) {
        if (fwd.is_v6() || !l.v6only) p.covered = true;  // a dual-stack :: takes IPv4 too
      } else if (a.is_v4_mapped()) {
        consider_v4(p, asio::ip::make_address_v4(asio::ip::v4_mapped, a));
      } else if (fwd.is_v6() && a == fwd.to_v6()) {
        p.covered = true;
      } else if (a.is_loopback()) {
        p.v6 = true;
      }
    }
  }
  std::map<std::uint16_t, tcp::endpoint> out;
  for (const auto& [port, p] : ports) {
    if (p.covered) continue;
    if (p.v4) {
      out.emplace(port, tcp::endpoint(*p.v4, port));
    } else if (p.v6) {
      out.emplace(port, tcp::endpoint(asio::ip::address_v6::loopback(), port));
    }
  }
  return out;
}

Plan plan_forwards(const std::map<std::uint16_t, tcp::endpoint>& current,
                   const std::map<std::uint16_t, tcp::endpoint>& wanted) {
  Plan plan;
  for (const auto& [port, target] : current) {
    auto w = wanted.find(port);
    if (w == wanted.end()) {
      plan.close.push_back(port);
    } else if (w->second != target) {
      plan.retarget.emplace_back(port, w->second);
    }
  }
  for (const auto& [port, target] : wanted) {
    if (current.count(port) == 0) plan.open.emplace_back(port, target);
  }
  return plan;
}

// One forward: the listener on the external address and its relays' count.
struct Forwarder::Forward {
  Forward(asio::any_io_executor ex, std::uint16_t p, tcp::endpoint t) : port(p), target(t), acceptor(ex) {}
  std::uint16_t port;
  tcp::endpoint target;
  tcp::acceptor acceptor;
  std::uint64_t inode = 0;
  std::size_t connections = 0;
  bool accepting = false;  // an accept is pending
  bool waiting = false;    // parked in waiting_
  bool closed = false;
};

Forwarder::Forwarder(asio::any_io_executor ex, ForwardConfig config)
    : ex_(std::move(ex)), config_(std::move(config)), timer_(ex_) {
  policy_.ports = config_.ports;
  if (!config_.address.empty()) {
    boost::system::error_code ec;
    policy_.address = asio::ip::make_address(config_.address, ec);
    enabled_ = !ec;
  }
}

Forwarder::~Forwarder() { stop(); }

std::string Forwarder::validate() const {
  if (config_.address.empty()) return "";
  boost::system::error_code ec;
  auto a = asio::ip::make_address(config_.address, ec);
  if (ec) return "invalid --forward-address \"" + config_.address + "\": not an IP address";
  if (a.is_unspecified()) return "invalid --forward-address \"" + config_.address + "\": must not be a wildcard";
  return "";
}

void Forwarder::start() {
  if (!enabled_ || stopped_) return;
  log::info(kLogger, "forwarding loopback-only TCP services to " + config_.address + " (scan every " +
                         std::to_string(config_.scan_interval.count()) + " ms)");
  scan_once();
}

void Forwarder::stop() {
  if (stopped_) return;
  stopped_ = true;
  timer_.cancel();
  while (!forwards_.empty()) close_forward(forwards_.begin()->first);
  auto relays = std::move(relays_);
  relays_.clear();
  for (auto& [id, relay] : relays) relay->close();
  waiting_.clear();
}

void Forwarder::schedule_scan() {
  if (stopped_) return;
  timer_.expires_after(config_.scan_interval);
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled: the forwarder may be gone
    scan_once();
  });
}

void Forwarder::scan_once() {
  if (stopped_) return;
  std::vector<Listener> scan;
  if (int err = list_tcp_listeners(scan); err != 0) {
    // An incomplete scan must not close forwards: keep them and try again.
    if (scan_error_logged_ != err) {
      log::warn(kLogger, "cannot list TCP listeners (sock_diag): " + errno_text(err));
      scan_error_logged_ = err;
    }
  } else {
    scan_error_logged_ = 0;
    apply(scan);
  }
  resume_waiting();
  schedule_scan();
}

void Forwarder::apply(const std::vector<Listener>& scan) {
  if (!enabled_ || stopped_) return;
  std::set<std::uint64_t> own = own_inodes_;
  for (const auto& [port, f] : forwards_) own.insert(f->inode);
  auto wanted = wanted_forwards(scan, policy_, own);
  auto plan = plan_forwards(forwards(), wanted);
  for (auto port : plan.close) {
    log::info(kLogger, "service on port " + std::to_string(port) + " went away: stopped forwarding " + config_.address +
                           ":" + std::to_string(port));
    close_forward(port);
  }
  for (const auto& [port, target] : plan.retarget) {
    auto& f = forwards_.at(port);
    log::debug(kLogger, "port " + std::to_string(port) + ": new connections go to " + endpoint_text(target));
    f->target = target;
  }
  for (const auto& [port, target] : plan.open) {
    if (open_forward(port, target) == EADDRNOTAVAIL) break;  // no port binds until the address appears
  }
  for (auto it = failed_.begin(); it != failed_.end();) {
    it = wanted.count(it->first) != 0 ? std::next(it) : failed_.erase(it);
  }
}

int Forwarder::open_forward(std::uint16_t port, const tcp::endpoint& target) {
  auto f = std::make_shared<Forward>(ex_, port, target);
  tcp::endpoint ep(policy_.address, port);
  boost::system::error_code ec;
  f->acceptor.open(ep.protocol(), ec);
  if (!ec) f->acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec && ep.address().is_v6()) f->acceptor.set_option(asio::ip::v6_only(true), ec);
  if (!ec) f->acceptor.bind(ep, ec);
  if (!ec) f->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    int err = ec.value();
    if (err == EADDRNOTAVAIL) {
      // The external address is not configured (yet): every scan tries again, so an address that
      // appears later is used.
      if (!address_missing_logged_) {
        log::warn(kLogger, "forward address " + config_.address +
                               " is not available (no interface has it); retrying at every scan");
        address_missing_logged_ = true;
      }
      return err;
    }
    auto [it, inserted] = failed_.emplace(port, err);
    if (inserted || it->second != err) {
      it->second = err;
      log::warn(kLogger, "cannot forward port " + std::to_string(port) + " on " + config_.address + ": " +
                             errno_text(err) + "; retrying at every scan");
    }
    return err;
  }
  if (address_missing_logged_) {
    log::info(kLogger, "forward address " + config_.address + " is available now");
    address_missing_logged_ = false;
  }
  failed_.erase(port);
  struct stat st {};
  if (::fstat(f->acceptor.native_handle(), &st) == 0) f->inode = st.st_ino;
  boost::system::error_code ignored;
  f->acceptor.non_blocking(true, ignored);
  log::info(kLogger, "forwarding " + endpoint_text(ep) + " to " + endpoint_text(target));
  forwards_.emplace(port, f);
  accept_next(f);
  return 0;
}

void Forwarder::close_forward(std::uint16_t port) {
  auto it = forwards_.find(port);
  if (it == forwards_.end()) return;
  auto f = it->second;
  forwards_.erase(it);
  f->closed = true;
  boost::system::error_code ignored;
  f->acceptor.close(ignored);  // connections already relayed run on until they end
}

std::map<std::uint16_t, tcp::endpoint> Forwarder::forwards() const {
  std::map<std::uint16_t, tcp::endpoint> out;
  for (const auto& [port, f] : forwards_) out.emplace(port, f->target);
  return out;
}

tcp::endpoint Forwarder::local_endpoint(std::uint16_t port) const {
  auto it = forwards_.find(port);
  if (it == forwards_.end()) return {};
  boost::system::error_code ec;
  return it->second->acceptor.local_endpoint(ec);
}

void Forwarder::park(const std::shared_ptr<Forward>& f) {
  if (f->waiting) return;
  f->waiting = true;
  waiting_.push_back(f);
}

void Forwarder::accept_next(const std::shared_ptr<Forward>& f) {
  if (f->closed || f->accepting || stopped_) return;
  // At a cap the listener stops accepting; new clients wait in its backlog until a relay ends.
  if (f->connections >= config_.max_connections_per_forward) return;  // on_relay_done resumes it
  if (connections_ >= config_.max_connections) {
    if (!cap_logged_) {
      log::warn(kLogger, "forwarded connections reached --forward-max-connections (" +
                             std::to_string(config_.max_connections) + "); new ones wait");
      cap_logged_ = true;
    }
    return park(f);
  }
  f->accepting = true;
  f->acceptor.async_accept([this, f](const boost::system::error_code& ec, tcp::socket s) {
    f->accepting = false;
    if (f->closed) return;  // closed forward (or the forwarder stopping): touch nothing else
    if (ec) {
      // Cancelled at the global cap (hold_accepts): wait for a connection to end.
      if (ec == asio::error::operation_aborted) return park(f);
      // EMFILE/ENFILE and the like: wait for a relay to end or the next scan rather than spin.
      log::debug(kLogger, "accept on port " + std::to_string(f->port) + " failed: " + ec.message());
      return park(f);
    }
    on_accept(f, std::move(s));
  });
}

bool Forwarder::fd_budget_allows(int fd) const {
  // fds are handed out lowest first, so an accepted fd numbered N means N fds below it are open.
  // The relay needs five more (its service socket, two pipes).
  struct rlimit rl {};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return true;
  return static_cast<std::uint64_t>(fd) + 1 + 5 + config_.fd_reserve <= rl.rlim_cur;
}

void Forwarder::on_accept(const std::shared_ptr<Forward>& f, tcp::socket s) {
  if (!fd_budget_allows(s.native_handle())) {
    if (!fd_pressure_logged_) {
      log::warn(kLogger, "open fds near the limit minus --forward-fd-reserve (" + std::to_string(config_.fd_reserve) +
                             "): refusing forwarded connections until fds are free");
      fd_pressure_logged_ = true;
    }
    boost::system::error_code ignored;
    s.close(ignored);
    return park(f);
  }
  fd_pressure_logged_ = false;
  if (connections_ >= config_.max_connections) {
    // Accepts that completed together past the cap (several forwards at once): the cap holds.
    boost::system::error_code ignored;
    s.close(ignored);
    return park(f);
  }
  ++f->connections;
  ++connections_;
  if (connections_ >= config_.max_connections) hold_accepts();
  std::uint64_t id = next_relay_id_++;
  auto relay = Relay::create(std::move(s), [this, f, id](const RelayStats& st) {
    log::debug(kLogger, "connection on port " + std::to_string(f->port) + " ended: " + std::to_string(st.to_service) +
                            " bytes in, " + std::to_string(st.to_client) + " bytes out" +
                            (st.error != 0 ? ", " + errno_text(st.error) : ""));
    --f->connections;
    --connections_;
    relays_.erase(id);
    if (stopped_) return;
    cap_logged_ = false;
    accept_next(f);
    resume_waiting();
  });
  relays_.emplace(id, relay);
  relay->start(f->target);
  accept_next(f);
}

void Forwarder::hold_accepts() {
  // The other forwards' pending accepts would take connections past the global cap: cancel them
  // (their handlers park them) and leave the clients in the kernel's backlogs.
  for (auto& [port, f] : forwards_) {
    if (!f->accepting) continue;
    boost::system::error_code ignored;
    f->acceptor.cancel(ignored);
  }
}

void Forwarder::resume_waiting() {
  if (waiting_.empty()) return;
  auto waiting = std::move(waiting_);
  waiting_.clear();
  for (auto& w : waiting) {
    if (auto f = w.lock()) {
      f->waiting = false;
      accept_next(f);
    }
  }
}

}  // namespace envd::forward
