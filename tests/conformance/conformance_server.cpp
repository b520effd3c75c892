// The Connect conformance suite's server under test (`connectconformance --mode server`): reads
// one size-delimited ServerCompatRequest on stdin, serves ConformanceService on 127.0.0.1 with
// envd's own listener, HTTP/1.1 + h2c sessions, router and RPC layer, and answers a size-delimited
// ServerCompatResponse with the port on stdout. Runs until SIGTERM or SIGINT. Not shipped.
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include "connectrpc/conformance/v1/server_compat.pb.h"
#include "envd/http/server.h"
#include "envd/log.h"
#include "envd/router.h"
#include "envd/rpc/rpc_server.h"
#include "tests/conformance/conformance_service.h"

namespace asio = boost::asio;
namespace v1 = connectrpc::conformance::v1;

namespace {

bool read_exact(int fd, char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_exact(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t r = ::write(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  envd::log::Level level = envd::log::Level::warn;
  if (argc > 1 && std::string(argv[1]) == "-v") level = envd::log::Level::debug;
  envd::log::init(level);
  std::signal(SIGPIPE, SIG_IGN);

  unsigned char prefix[4];
  if (!read_exact(0, reinterpret_cast<char*>(prefix), 4)) {
    std::cerr << "conformance_server: no ServerCompatRequest on stdin\n";
    return 1;
  }
  std::uint32_t size = (std::uint32_t{prefix[0]} << 24) | (std::uint32_t{prefix[1]} << 16) |
                       (std::uint32_t{prefix[2]} << 8) | std::uint32_t{prefix[3]};
  std::string bytes(size, '\0');
  v1::ServerCompatRequest request;
  if (!read_exact(0, bytes.data(), size) || !request.ParseFromString(bytes)) {
    std::cerr << "conformance_server: bad ServerCompatRequest\n";
    return 1;
  }
  if (request.use_tls()) {
    std::cerr << "conformance_server: TLS is not supported (envd serves cleartext HTTP/1.1 and h2c)\n";
    return 1;
  }

  asio::io_context io(1);
  envd::rpc::Registry registry;
  envd::conformance::register_conformance_service(registry);
  envd::rpc::RpcConfig config;
  if (request.message_receive_limit() > 0) config.max_request_message_bytes = request.message_receive_limit();
  envd::rpc::RpcServer rpc(registry, config);
  envd::Router router(rpc);

  envd::http::ServerContext ctx;
  ctx.handler = [&router](envd::http::Exchange& ex) { return router.handle(ex); };

  asio::ip::tcp::acceptor acceptor(io, asio::ip::tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
  v1::ServerCompatResponse response;
  response.set_host("127.0.0.1");
  response.set_port(acceptor.local_endpoint().port());
  std::string out = response.SerializeAsString();
  const std::uint32_t n = static_cast<std::uint32_t>(out.size());
  const char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                       static_cast<char>(n)};
  if (!write_exact(1, len, 4) || !write_exact(1, out.data(), out.size())) return 1;

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&io](const boost::system::error_code&, int) { io.stop(); });
  asio::co_spawn(io, envd::http::accept_loop(acceptor, ctx), asio::detached);
  io.run();
  envd::log::flush();
  return 0;
}
