// envd: the sandbox agent. Parses flags, wires the services into the router, and serves HTTP/1.1
// and h2c on one port from a single event loop.
#include <malloc.h>
#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "envd/access.h"
#include "envd/auth.h"
#include "envd/blocking.h"
#include "envd/control.h"
#include "envd/echo_service.h"
#include "envd/flags.h"
#include "envd/footprint.h"
#include "envd/http/server.h"
#include "envd/log.h"
#include "envd/metrics.h"
#include "envd/notify.h"
#include "envd/open_files.h"
#include "envd/pause/pause_routes.h"
#include "envd/reflection_service.h"
#include "envd/route_table.h"
#include "envd/router.h"
#include "envd/sandbox_state.h"
#include "envd/test_routes.h"
#include "fs/etag.h"
#include "fs/files_service.h"
#include "fs/files_upload.h"
#include "fs/filesystem_service.h"
#include "fs/watch_service.h"
#include "process/process_service.h"

// Port forwarding (forward/).
#include <sys/stat.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <memory>
#include <thread>

#include "forward/forwarder.h"

#ifndef ENVD_COMMIT
#define ENVD_COMMIT "unknown"
#endif

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// Waits (bounded) for the requests in flight to end, then stops the loop.
asio::awaitable<void> drain_and_stop(asio::io_context& io, envd::Router& router, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  asio::steady_timer t(io);
  while (router.in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
    t.expires_after(std::chrono::milliseconds(5));
    co_await t.async_wait(asio::use_awaitable);
  }
  if (router.in_flight() > 0) {
    envd::log::warn("envd", std::to_string(router.in_flight()) + " requests still open after " +
                                std::to_string(timeout.count()) + " ms; closing them");
  } else {
    // The last responses may still sit in a session's queue or the kernel's send buffer: close
    // every connection gracefully and wait (within the same bound) until each sent FIN and its
    // client acknowledged every byte, rather than reset connections with responses in flight.
    envd::http::close_connections_gracefully();
    while (envd::http::unsettled_connections() > 0 && std::chrono::steady_clock::now() < deadline) {
      t.expires_after(std::chrono::milliseconds(5));
      co_await t.async_wait(asio::use_awaitable);
    }
    if (auto n = envd::http::unsettled_connections(); n > 0)
      envd::log::info("envd", std::to_string(n) + " connections not closed by their clients; closing them");
  }
  envd::log::info("envd", "shut down");
  io.stop();
}

// glibc keeps freed heap pages mapped after a burst (1000 streams left ~28 MB behind), and the code
// pages a request faulted in stay mapped after it. envd idles for most of a sandbox's life, so now
// and then it hands freed heap back and drops its clean code pages (they stay in the page cache
// and fault back in as minor faults: ~20 fault-arounds for a request after an idle spell). Both
// calls are cheap when there is nothing to return.
// Between a /collapse and the next /init (the snapshot window) the ticks are skipped: malloc_trim
// would hand back, and so split, the huge pages /collapse just made.
asio::awaitable<void> trim_heap(asio::io_context& io, std::chrono::milliseconds interval,
                                const envd::pause::PauseController& pause) {
  asio::steady_timer t(io);
  for (;;) {
    t.expires_after(interval);
    co_await t.async_wait(asio::use_awaitable);
    if (pause.trim_suspended()) {
      envd::log::debug("envd", "trim tick skipped: the heap stays collapsed until the next /init");
      continue;
    }
    ::malloc_trim(0);
    envd::release_clean_image_pages();
  }
}

// Every connection and every process pipe is an fd; the soft limit a service starts with (1024
// under systemd) is exhausted by ~1000 slow clients. Raise it to the hard limit, as Go's runtime
// does for envd (children get the original back: envd/open_files.h).
void raise_open_files_limit() {
  if (int err = envd::open_files::raise_to_hard(); err != 0) {
    envd::log::warn("envd", std::string("cannot raise the open files limit: ") + std::strerror(err));
  } else if (envd::open_files::raised) {
    struct rlimit now {};
    ::getrlimit(RLIMIT_NOFILE, &now);
    envd::log::debug("envd", "open files limit raised from " + std::to_string(envd::open_files::original.rlim_cur) +
                                 " to " + std::to_string(now.rlim_cur));
  }
}

// WATCHDOG=1 every `interval` from the event loop: a loop that stops turning stops the pings, and
// the service manager restarts envd (systemd WatchdogSec=).
asio::awaitable<void> watchdog_pings(asio::io_context& io, const envd::notify::Notifier& notifier,
                                     std::chrono::microseconds interval) {
  asio::steady_timer t(io);
  for (;;) {
    notifier.send("WATCHDOG=1");  // EAGAIN (a full queue) loses one ping; the next one follows
    t.expires_after(interval);
    co_await t.async_wait(asio::use_awaitable);
  }
}

}  // namespace

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
  // -verbose: the JSON lines go to stdout instead of stderr (never both: journald would get every
  // line twice). From here on a thread of its own writes them (the log may sit on a filesystem
  // /fsfreeze freezes).
  envd::log::start_async(flags.verbose ? STDOUT_FILENO : STDERR_FILENO, flags.log_queue_bytes, flags.log_gather);
  envd::log::route_library_logs(flags.library_log_lines_per_minute);
  std::signal(SIGPIPE, SIG_IGN);
  raise_open_files_limit();

  asio::io_context io(1);
  envd::default_blocking_pool().set_max_threads(flags.blocking_threads);

  envd::SandboxState state;
  state.internal_env["E2B_SANDBOX"] = flags.is_not_fc ? "false" : "true";

  envd::rpc::Registry registry;
  envd::process::ServiceConfig process_config;
  process_config.retention = flags.process_retention;
  process_config.subscriber_stall = flags.subscriber_stall;
  process_config.cgroups = !flags.no_cgroups;
  process_config.cgroup_root = flags.cgroup_root;
  process_config.output_retention_max_bytes = flags.output_retention_max_bytes;  // output retention (issue 13)
  process_config.output_retention_total_bytes = flags.output_retention_total_bytes;
  process_config.output_retention = flags.output_retention;
  process_config.output_retention_max_ended = flags.output_retention_max_ended;
  envd::process::register_service(registry, state, process_config);
  envd::fs::register_service(registry, state);
  envd::fs::WatchConfig watch_config;
  watch_config.max_inotify_watches = flags.max_inotify_watches;
  watch_config.stream_queue_events = flags.watch_queue_events;
  watch_config.stream_queue_bytes = flags.watch_queue_bytes;
  watch_config.poll_queue_events = flags.watcher_queue_events;
  watch_config.poll_queue_bytes = flags.watcher_queue_bytes;
  watch_config.max_poll_watchers = flags.max_watchers;
  watch_config.poll_idle_timeout = flags.watcher_idle_timeout;
  envd::fs::register_watch_service(registry, state, io.get_executor(), watch_config);
  if (flags.test_services) envd::register_echo_service(registry);
  // Discoverable by standard gRPC tools: server reflection and health (behind the token as well).
  envd::HealthState health;
  envd::register_reflection_service(registry);
  envd::register_health_service(registry, health);

  envd::rpc::RpcServer rpc(registry, envd::rpc::RpcConfig{flags.max_message_bytes});
  rpc.set_authenticator([&state](const envd::http::RequestHead& req, envd::rpc::CallContext& ctx) {
    return envd::resolve_request_user(state, req.header("authorization"), ctx.user);
  });

  state.default_user = flags.default_user;
  state.default_workdir = flags.default_workdir;

  envd::MetricsSampler metrics(io.get_executor(), flags.metrics_interval);
  metrics.start();

  // Port forwarding (contract §7.5): loopback-only services exposed on --forward-address, relayed
  // inside envd (no socat). Scans and relays run on a thread of their own (DESIGN §5: the loop must
  // never wait behind port relays): during a 1 GiB forwarded transfer process.List kept its idle
  // p50 and answered up to 3x more calls than with the relays on the loop (bench/forward_bench.py).
  // --forward-thread=false puts them on the loop. Started once the API listener exists (below).
  envd::forward::ForwardConfig forward_config;
  forward_config.scan_interval = flags.forward_scan;
  forward_config.address = flags.forward_address;
  forward_config.ports = flags.forward_ports;
  forward_config.max_connections_per_forward = flags.forward_max_connections_per_port;
  forward_config.max_connections = flags.forward_max_connections;
  forward_config.fd_reserve = flags.forward_fd_reserve;
  std::unique_ptr<asio::io_context> forward_io;
  if (flags.forward_thread) forward_io = std::make_unique<asio::io_context>(1);
  asio::any_io_executor forward_ex = forward_io ? forward_io->get_executor() : io.get_executor();
  envd::forward::Forwarder forwarder(forward_ex, forward_config);
  if (auto err = forwarder.validate(); !err.empty()) {
    envd::log::error("envd", err);
    return 2;
  }
  std::thread forward_thread;

  // Handler chain as envd's (contract §1.2): CORS (in the router), access token, Basic user.
  envd::Router router(rpc);
  router.use([&state](const envd::http::RequestHead& req, bool) { return envd::check_access_token(state, req); });
  router.use([&state](const envd::http::RequestHead& req, bool rpc_path) {
    return envd::check_basic_user(state, req, rpc_path);
  });
  envd::ControlOptions control;
  // Only a daemon told it owns the clock sets it, and never outside Firecracker (-isnotfc).
  control.owns_clock = flags.owns_clock && !flags.is_not_fc;
  control.max_init_depth = flags.max_init_depth;
  // Pause hooks (contract §6.8): /freeze, /unfreeze, and the thaw of every authorised /init.
  envd::pause::PauseOptions pause_options;
  pause_options.cgroups = !flags.no_cgroups;
  pause_options.cgroup_root = flags.cgroup_root;
  pause_options.thaw_watchdog = flags.thaw_watchdog;
  pause_options.max_cgroups = flags.freeze_max_cgroups;
  pause_options.collapse_min_resident_pct = flags.collapse_min_resident_pct;
  // `/` in a VM; outside one (-isnotfc: every test, the Dockerfile) only a path given explicitly:
  // freezing the host's root would wedge it.
  if (flags.fsfreeze_path) {
    pause_options.fsfreeze_path = flags.fsfreeze_path;
  } else if (!flags.is_not_fc) {
    pause_options.fsfreeze_path = "/";
  }
  envd::pause::PauseController pause(io.get_executor(), pause_options);
  pause.register_routes(router);
  router.use([&pause](const envd::http::RequestHead& req, bool) { return pause.write_gate(req); });
  control.on_authorized = [&pause](std::string_view request_id) { return pause.thaw_for_init(request_id); };
  control.max_init_body_bytes = flags.max_init_body_bytes;
  envd::register_control_routes(router, state, metrics, control);
  envd::fs::etag_generations().set_capacity(flags.etag_generations);
  envd::fs::FilesOptions files;
  files.gzip_chunk_bytes = flags.gzip_chunk_bytes;
  // --- directories as archives (issue 13 part 3) ---
  files.archive.max_entries = flags.archive_max_entries;
  files.archive.max_bytes = flags.archive_max_bytes;
  files.archive.max_name_bytes = flags.archive_max_name_bytes;
  files.archive.max_header_bytes = flags.archive_max_header_bytes;
  files.archive.max_depth = flags.archive_max_depth;
  // --- end directories as archives ---
  envd::fs::register_files_routes(router, state, files);
  envd::fs::UploadOptions upload_options{flags.upload_idle_timeout};
  upload_options.max_compose_body_bytes = flags.max_compose_body_bytes;
  upload_options.archive = files.archive;  // directories as archives
  envd::fs::register_upload_routes(router, state, upload_options);
  if (flags.test_services) envd::register_test_routes(router);

  envd::http::ServerContext ctx;
  ctx.config.idle_timeout = flags.idle_timeout;
  ctx.config.max_header_bytes = flags.max_header_bytes;
  ctx.config.read_timeout = flags.read_timeout;
  ctx.config.read_min_progress_bytes = flags.read_min_progress_bytes;
  ctx.config.max_header_count = flags.max_header_count;
  ctx.config.h2_max_header_list_bytes = flags.h2_max_header_list_bytes;
  ctx.config.h2_header_budget_bytes = flags.h2_header_budget_bytes;
  ctx.config.h2_max_concurrent_streams = flags.h2_max_concurrent_streams;
  ctx.handler = [&router](envd::http::Exchange& ex) { return router.handle(ex); };

  // --- access matrix: the table of what is served, from the registration above ---
  if (flags.print_routes) {
    registry.resolve_all();  // services registered by name are listed too
    std::cout << envd::route_table_json(router, registry) << std::endl;
    return 0;
  }
  // --- end access matrix ---

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

  std::string notify_error;
  envd::notify::Notifier notifier = envd::notify::Notifier::open(std::getenv("NOTIFY_SOCKET"), notify_error);
  if (!notify_error.empty()) envd::log::warn("envd", notify_error);

  // Shutdown ladder (DESIGN §5): stop accepting, end open RPC streams with `unavailable`, wait a
  // bounded time for requests in flight, exit 0. Child processes are left running.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  bool stopping = false;
  std::function<void(const boost::system::error_code&, int)> on_signal = [&](const boost::system::error_code& e,
                                                                             int sig) {
    if (e) return;
    if (stopping) {
      envd::log::warn("envd", "second signal " + std::to_string(sig) + ": exiting now");
      io.stop();
      return;
    }
    stopping = true;
    envd::log::info("envd", "received signal " + std::to_string(sig) + ", shutting down");
    notifier.send("STOPPING=1");
    boost::system::error_code ignored;
    acceptor.close(ignored);
    metrics.stop();
    asio::post(forward_ex, [&forwarder] { forwarder.stop(); });
    signals.async_wait(on_signal);
    // One bound for the whole ladder: the wait for Watch streams below counts against it.
    auto shutdown_deadline = std::chrono::steady_clock::now() + flags.shutdown_timeout;
    auto end_calls = [&, shutdown_deadline] {
      rpc.shutdown(envd::rpc::error(envd::rpc::Code::unavailable, "envd is shutting down"));
      router.shutdown();  // REST requests too (RPC calls already got their status above)
      pause.thaw_at_shutdown();
      auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(shutdown_deadline - std::chrono::steady_clock::now());
      asio::co_spawn(io, drain_and_stop(io, router, std::max(left, std::chrono::milliseconds(0))), asio::detached);
    };
    // Health Watch streams send NOT_SERVING and end before the other calls are cut (bounded).
    health.set_not_serving();
    if (health.watchers() == 0) {
      end_calls();
    } else {
      asio::co_spawn(
          io,
          [&io, &health, end_calls, deadline = shutdown_deadline]() -> asio::awaitable<void> {
            asio::steady_timer t(io);
            while (health.watchers() > 0 && std::chrono::steady_clock::now() < deadline) {
              t.expires_after(std::chrono::milliseconds(2));
              co_await t.async_wait(asio::use_awaitable);
            }
            end_calls();
          },
          asio::detached);
    }
  };
  signals.async_wait(on_signal);
  // The forwarder never forwards envd's own listener (matched by inode in its scans).
  if (struct stat st{}; ::fstat(acceptor.native_handle(), &st) == 0) forwarder.add_own_inode(st.st_ino);
  asio::post(forward_ex, [&forwarder] { forwarder.start(); });
  if (forward_io) {
    forward_thread = std::thread([&forward_io] {
      pthread_setname_np(pthread_self(), "envd-forward");
      auto work = asio::make_work_guard(*forward_io);
      forward_io->run();
    });
  }

  asio::co_spawn(io, envd::http::accept_loop(acceptor, ctx), asio::detached);
  asio::co_spawn(io, trim_heap(io, flags.trim_interval, pause), asio::detached);
  // Service manager notifications (envd/notify.h): READY=1 once the loop runs with the accept loop
  // waiting on the listener, WATCHDOG=1 at half of $WATCHDOG_USEC.
  asio::post(io, [&] {
    if (int e = notifier.send("READY=1\nSTATUS=listening on port " + std::to_string(acceptor.local_endpoint().port()));
        e != 0) {
      envd::log::warn("envd", std::string("cannot notify the service manager (READY=1): ") + std::strerror(e));
    }
  });
  if (notifier.enabled()) {
    if (auto every =
            envd::notify::watchdog_interval(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"), ::getpid())) {
      envd::log::debug("envd", "watchdog: WATCHDOG=1 every " + std::to_string(every->count()) + " us");
      asio::co_spawn(io, watchdog_pings(io, notifier, *every), asio::detached);
    }
  }
  if (flags.test_services) envd::start_loop_lag_probe(io.get_executor());
  io.run();
  if (forward_io) {  // scans and relays stop with the loop
    forward_io->stop();
    forward_thread.join();
  }
  // Before `io` goes: pool jobs still queued or running would resume coroutines on it.
  envd::default_blocking_pool().shutdown(std::chrono::seconds(1));
  envd::log::flush();
  return 0;
}
