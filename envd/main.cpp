// envd: the sandbox agent. Parses flags, wires the services into the router, and serves HTTP/1.1
// and h2c on one port from a single event loop.
#include <csignal>
#include <cstdio>
#include <iostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include "envd/auth.h"
#include "envd/echo_service.h"
#include "envd/flags.h"
#include "envd/http/server.h"
#include "envd/log.h"
#include "envd/router.h"
#include "envd/sandbox_state.h"
#include "fs/filesystem_service.h"
#include "process/process_service.h"

#ifndef ENVD_COMMIT
#define ENVD_COMMIT "unknown"
#endif

namespace asio = boost::asio;
using asio::ip::tcp;

int main(int argc, char** argv) {
  envd::Flags flags;
  std::vector<std::string> args(argv + 1, argv + argc);
  if (auto err = envd::parse_flags(args, flags)) {
    std::cerr << "envd: " << *err << "\n\n" << envd::usage();
    return 2;
  }
  if (flags.help) {
    std::cout << envd::usage();
    return 0;
  }
  if (flags.version) {
    std::cout << envd::kVersion << "\n";
    return 0;
  }
  if (flags.commit) {
    std::cout << ENVD_COMMIT << "\n";
    return 0;
  }
  envd::log::Level level = envd::log::Level::info;
  if (!envd::log::parse_level(flags.log_level, level)) {
    std::cerr << "envd: invalid value \"" << flags.log_level << "\" for flag -log-level\n";
    return 2;
  }
  if (flags.verbose) level = envd::log::Level::debug;
  envd::log::init(level);
  std::signal(SIGPIPE, SIG_IGN);

  asio::io_context io(1);

  envd::SandboxState state;
  state.internal_env["E2B_SANDBOX"] = flags.is_not_fc ? "false" : "true";

  envd::rpc::Registry registry;
  envd::process::ServiceConfig process_config;
  process_config.retention = flags.process_retention;
  process_config.subscriber_stall = flags.subscriber_stall;
  process_config.cgroups = !flags.no_cgroups;
  process_config.cgroup_root = flags.cgroup_root;
  envd::process::register_service(registry, state, process_config);
  envd::fs::register_service(registry);
  if (flags.test_services) envd::register_echo_service(registry);

  envd::rpc::RpcServer rpc(registry, envd::rpc::RpcConfig{flags.max_message_bytes});
  rpc.set_authenticator([&state](const envd::http::RequestHead& req, envd::rpc::CallContext& ctx) {
    return envd::resolve_request_user(state, req.header("authorization"), ctx.user);
  });

  envd::Router router(rpc);
  router.add("GET", "/health", [](envd::http::Exchange& ex) -> asio::awaitable<void> {
    envd::http::Headers h{{"cache-control", "no-store"}};
    co_await ex.respond(204, std::move(h), {});
  });

  envd::http::ServerContext ctx;
  ctx.config.idle_timeout = flags.idle_timeout;
  ctx.config.max_header_bytes = flags.max_header_bytes;
  ctx.handler = [&router](envd::http::Exchange& ex) { return router.handle(ex); };

  tcp::acceptor acceptor(io);
  boost::system::error_code ec;
  tcp::endpoint endpoint(asio::ip::address_v4::any(), flags.port);
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    envd::log::error("envd", "cannot listen on port " + std::to_string(flags.port) + ": " + ec.message());
    return 1;
  }
  envd::log::info("envd", "listening on 0.0.0.0:" + std::to_string(acceptor.local_endpoint().port()) + " (envd " +
                              envd::kVersion + ")");

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& e, int sig) {
    if (e) return;
    envd::log::info("envd", "received signal " + std::to_string(sig) + ", shutting down");
    boost::system::error_code ignored;
    acceptor.close(ignored);
    io.stop();
  });

  asio::co_spawn(io, envd::http::accept_loop(acceptor, ctx), asio::detached);
  io.run();
  return 0;
}
