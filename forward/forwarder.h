#pragma once
// Port forwarding (contract §7.5, done inside envd): services that listen only on the loopback
// address become reachable on the guest's external address (--forward-address, 169.254.0.21).
// Every --forward-scan-ms the forwarder lists the TCP listeners (sock_diag.h), works out which
// ports need a forward (wanted_forwards, a pure function), opens a listener on the external
// address for each new one, closes the ones whose service went away, and relays each accepted
// connection to the service (relay.h).
//
// Bounds: connections per forward and in total (the listener stops accepting at a cap and resumes
// when a connection ends; clients wait in the kernel's backlog), and a reserve of fds the
// forwarder never takes, so a busy dev server cannot starve envd's own API of fds.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>

#include "forward/relay.h"
#include "forward/sock_diag.h"

namespace envd::forward {

using PortRange = std::pair<std::uint16_t, std::uint16_t>;  // inclusive

struct Policy {
  boost::asio::ip::address address;  // the external address forwards listen on
  std::vector<PortRange> ports;      // ports that may be forwarded; empty: all
  bool port_allowed(std::uint16_t port) const;
};

// A listener on 127.0.0.0/8, ::1 or ::ffff:127.0.0.0/104.
bool is_loopback(const Listener& l);

// The forwards one scan calls for: port → the loopback service to connect to. A port is
// forwarded when some listener on it is loopback-only and nothing already takes connections on
// the external address at that port: no wildcard listener covering its family (0.0.0.0; :: unless
// IPV6_V6ONLY, which also covers IPv4) and no listener on the external address itself. Listeners
// whose inode is in `own` (envd's API, the forwards themselves) are ignored. The target is
// 127.0.0.1 when listened on, else the lowest other IPv4 loopback address, else ::1.
std::map<std::uint16_t, boost::asio::ip::tcp::endpoint> wanted_forwards(const std::vector<Listener>& scan,
                                                                        const Policy& policy,
                                                                        const std::set<std::uint64_t>& own);

// What turns the current forwards into the wanted ones.
struct Plan {
  std::vector<std::uint16_t> close;                                            // service gone
  std::vector<std::pair<std::uint16_t, boost::asio::ip::tcp::endpoint>> open;  // new
  std::vector<std::pair<std::uint16_t, boost::asio::ip::tcp::endpoint>> retarget;
};
Plan plan_forwards(const std::map<std::uint16_t, boost::asio::ip::tcp::endpoint>& current,
                   const std::map<std::uint16_t, boost::asio::ip::tcp::endpoint>& wanted);

struct ForwardConfig {
  std::chrono::milliseconds scan_interval{1000};
  std::string address = "169.254.0.21";  // empty: forwarding off
  std::vector<PortRange> ports;
  std::size_t max_connections_per_forward = 1024;
  std::size_t max_connections = 4096;
  std::size_t fd_reserve = 1024;  // fds below RLIMIT_NOFILE the forwarder never takes
};

class Forwarder {
 public:
  // Everything runs on `ex` (one thread): scans, listeners, relays.
  Forwarder(boost::asio::any_io_executor ex, ForwardConfig config);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  // Checks the configuration (the address must parse); returns an error message or "".
  std::string validate() const;
  // Inodes of sockets that are envd's own (its API listener): never forwarded.
  void add_own_inode(std::uint64_t inode) { own_inodes_.insert(inode); }
  // Starts scanning at once, then every scan interval. Call on the executor.
  void start();
  // Closes every forward and every relay and stops scanning. Call on the executor.
  void stop();

  // One reconcile step with a given scan (what start() does with each netlink scan); the unit
  // tests feed it scans directly.
  void apply(const std::vector<Listener>& scan);

  // Introspection (tests, logs).
  std::map<std::uint16_t, boost::asio::ip::tcp::endpoint> forwards() const;
  std::size_t connections() const { return connections_; }
  boost::asio::ip::tcp::endpoint local_endpoint(std::uint16_t port) const;

 private:
  struct Forward;
  void scan_once();
  void schedule_scan();
  int open_forward(std::uint16_t port, const boost::asio::ip::tcp::endpoint& target);
  void close_forward(std::uint16_t port);
  void accept_next(const std::shared_ptr<Forward>& f);
  void on_accept(const std::shared_ptr<Forward>& f, boost::asio::ip::tcp::socket s);
  void park(const std::shared_ptr<Forward>& f);
  void hold_accepts();
  void resume_waiting();
  bool fd_budget_allows(int fd) const;

  boost::asio::any_io_executor ex_;
  ForwardConfig config_;
  Policy policy_;
  bool enabled_ = false;
  bool stopped_ = false;
  boost::asio::steady_timer timer_;
  std::set<std::uint64_t> own_inodes_;
  std::map<std::uint16_t, std::shared_ptr<Forward>> forwards_;
  std::map<std::uint16_t, int> failed_;  // port → errno logged for it (logged once until it changes)
  bool address_missing_logged_ = false;
  int scan_error_logged_ = 0;
  std::size_t connections_ = 0;
  bool fd_pressure_logged_ = false;
  bool cap_logged_ = false;
  std::list<std::weak_ptr<Forward>> waiting_;  // forwards paused at the global cap, the fd reserve or an accept error
  std::map<std::uint64_t, std::shared_ptr<Relay>> relays_;  // live relays, closed by stop()
  std::uint64_t next_relay_id_ = 0;
};

}  // namespace envd::forward
