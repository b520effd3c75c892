#include "tests/fuzz/session_driver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <memory>
#include <string>

#include "envd/access.h"
#include "envd/auth.h"
#include "envd/control.h"
#include "envd/echo_service.h"
#include "envd/http/server.h"
#include "envd/log.h"
#include "envd/metrics.h"
#include "envd/router.h"
#include "envd/rpc/rpc_server.h"
#include "envd/sandbox_state.h"

namespace envd::fuzz {
namespace {

namespace asio = boost::asio;
using asio::ip::tcp;

struct Server {
  asio::io_context io{1};
  SandboxState state;
  rpc::Registry registry;
  std::unique_ptr<rpc::RpcServer> rpc;
  std::unique_ptr<MetricsSampler> metrics;
  std::unique_ptr<Router> router;
  http::ServerContext ctx;
  tcp::acceptor acceptor{io};
  std::uint16_t port = 0;

  Server() {
    std::signal(SIGPIPE, SIG_IGN);
    log::init(log::Level::off);
    state.internal_env["E2B_SANDBOX"] = "false";
    state.default_user = "root";
    register_echo_service(registry);
    rpc = std::make_unique<rpc::RpcServer>(registry, rpc::RpcConfig{1u << 20});
    rpc->set_authenticator([this](const http::RequestHead& req, rpc::CallContext& c) {
      return resolve_request_user(state, req.header("authorization"), c.user);
    });
    metrics = std::make_unique<MetricsSampler>(io.get_executor(), std::chrono::hours(1));
    router = std::make_unique<Router>(*rpc);
    router->use([this](const http::RequestHead& req, bool) { return check_access_token(state, req); });
    router->use([this](const http::RequestHead& req, bool rpc_path) { return check_basic_user(state, req, rpc_path); });
    register_control_routes(*router, state, *metrics, ControlOptions{});
    ctx.config.max_header_bytes = 64u << 10;
    ctx.handler = [this](http::Exchange& ex) { return router->handle(ex); };
    tcp::endpoint ep(asio::ip::address_v4::loopback(), 0);
    acceptor.open(ep.protocol());
    acceptor.set_option(tcp::acceptor::reuse_address(true));
    acceptor.bind(ep);
    acceptor.listen();
    port = acceptor.local_endpoint().port();
    asio::co_spawn(io, http::accept_loop(acceptor, ctx), asio::detached);
    io.poll();
  }
};

Server& server() {
  static Server* s = new Server();  // never destroyed: the loop outlives every input
  return *s;
}

// Runs ready handlers; if none ran, waits briefly for the kernel to deliver something.
bool pump(Server& s) {
  if (s.io.poll() > 0) return true;
  return s.io.run_one_for(std::chrono::microseconds(100)) > 0;
}

}  // namespace

void drive_connection(std::string_view prefix, const std::uint8_t* data, std::size_t size) {
  Server& s = server();
  std::string bytes(prefix);
  bytes.append(reinterpret_cast<const char*>(data), size);

  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) std::abort();
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(s.port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 && errno != EINPROGRESS) std::abort();

  std::size_t off = 0;
  bool shut = false;
  int quiet = 0;
  char sink[16384];
  // Bounded: an input that keeps the server busy (a slow echo method) is cut off after this.
  for (int round = 0; round < 4000 && quiet < 20; ++round) {
    bool progress = false;
    if (off < bytes.size()) {
      ssize_t n = ::send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n > 0) {
        off += static_cast<std::size_t>(n);
        progress = true;
      }
    } else if (!shut) {
      ::shutdown(fd, SHUT_WR);
      shut = true;
      progress = true;
    }
    ssize_t r = ::recv(fd, sink, sizeof sink, 0);
    if (r == 0) break;  // the server closed the connection
    if (r > 0) progress = true;
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;  // reset
    if (pump(s)) progress = true;
    quiet = progress ? 0 : quiet + 1;
  }
  ::close(fd);
  // Let the session see the close and release everything it holds.
  for (int i = 0; i < 200 && pump(s); ++i) {
  }
}

}  // namespace envd::fuzz
