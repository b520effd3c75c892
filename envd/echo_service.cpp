// The envdtest.Echo service: exercises every RPC shape for the end-to-end transport tests.
#include "envd/echo_service.h"

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <ctime>

#include <google/protobuf/descriptor.h>

#include "envdtest.pb.h"

namespace envd {

namespace {
struct EchoStats {
  std::uint64_t cancelled = 0;
  std::uint64_t running = 0;
  std::chrono::microseconds max_loop_lag{0};
  std::chrono::microseconds max_loop_lag_cpu{0};
};

// CPU time of the calling thread.
std::chrono::microseconds thread_cpu() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::chrono::seconds(ts.tv_sec) +
         std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::nanoseconds(ts.tv_nsec));
}
EchoStats g_stats;

// Counts a running handler; a handler unwound by cancellation (client gone, deadline) is counted.
struct Running {
  Running() { ++g_stats.running; }
  ~Running() {
    --g_stats.running;
    if (!done) ++g_stats.cancelled;
  }
  bool done = false;
};

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void register_echo_service(rpc::Registry& registry) {
  using namespace envdtest;
  namespace asio = boost::asio;
  registry.add_service(EchoRequest::descriptor()->file()->FindServiceByName("Echo"));

  registry.unary<EchoRequest, EchoResponse>(
      "envdtest.Echo", "Echo",
      [](rpc::CallContext&, const EchoRequest& req, EchoResponse& resp) -> asio::awaitable<rpc::Status> {
        resp.set_text(req.text());
        resp.set_payload(req.payload());
        resp.set_number(req.number());
        co_return rpc::Status{};
      });

  registry.server_stream<TicksRequest, Tick>(
      "envdtest.Echo", "Ticks",
      [](rpc::CallContext& ctx, const TicksRequest& req, rpc::Writer<Tick>& out) -> asio::awaitable<rpc::Status> {
        Running running;
        asio::steady_timer timer(ctx.executor());
        std::string payload(req.payload_size(), 'x');
        for (std::uint32_t i = 0; i < req.count(); ++i) {
          if (i > 0 && req.interval_ms() > 0) {
            timer.expires_after(std::chrono::milliseconds(req.interval_ms()));
            co_await timer.async_wait(asio::use_awaitable);
          }
          Tick t;
          t.set_seq(i);
          t.set_payload(payload);
          t.set_sent_at_ms(now_ms());
          if (!co_await out.send(t)) {
            co_return rpc::error(rpc::Code::canceled, "client gone");
          }
        }
        if (req.hold()) {
          // Ended only by the client going away (cancellation unwinds this wait).
          timer.expires_after(std::chrono::hours(1));
          co_await timer.async_wait(asio::use_awaitable);
        }
        running.done = true;
        if (!req.fail_code().empty()) {
          auto code = rpc::code_from_name(req.fail_code()).value_or(rpc::Code::unknown);
          co_return rpc::error(code, "failed after " + std::to_string(req.count()) + " messages");
        }
        co_return rpc::Status{};
      });

  registry.client_stream<EchoRequest, CollectResponse>(
      "envdtest.Echo", "Collect",
      [](rpc::CallContext&, rpc::Reader<EchoRequest>& in, CollectResponse& resp) -> asio::awaitable<rpc::Status> {
        Running running;
        EchoRequest msg;
        for (;;) {
          msg.Clear();
          auto r = co_await in.read(msg);
          if (r == rpc::ReadResult::end) break;
          if (r == rpc::ReadResult::error) {
            running.done = true;
            co_return in.status();
          }
          resp.set_count(resp.count() + 1);
          resp.set_bytes(resp.bytes() + msg.payload().size());
        }
        running.done = true;
        co_return rpc::Status{};
      });

  registry.bidi_stream<EchoRequest, EchoResponse>("envdtest.Echo", "Chat",
                                                  [](rpc::CallContext&, rpc::Reader<EchoRequest>& in,
                                                     rpc::Writer<EchoResponse>& out) -> asio::awaitable<rpc::Status> {
                                                    Running running;
                                                    EchoRequest msg;
                                                    for (;;) {
                                                      msg.Clear();
                                                      auto r = co_await in.read(msg);
                                                      if (r == rpc::ReadResult::end) break;
                                                      if (r == rpc::ReadResult::error) {
                                                        running.done = true;
                                                        co_return in.status();
                                                      }
                                                      if (msg.text() == "fail") {
                                                        running.done = true;
                                                        co_return rpc::error(rpc::Code::aborted, "asked to fail");
                                                      }
                                                      EchoResponse resp;
                                                      resp.set_text(msg.text());
                                                      resp.set_payload(msg.payload());
                                                      resp.set_number(msg.number());
                                                      if (!co_await out.send(resp))
                                                        co_return rpc::error(rpc::Code::canceled, "client gone");
                                                    }
                                                    running.done = true;
                                                    co_return rpc::Status{};
                                                  });

  registry.unary<FailRequest, EchoResponse>(
      "envdtest.Echo", "Fail",
      [](rpc::CallContext&, const FailRequest& req, EchoResponse&) -> asio::awaitable<rpc::Status> {
        auto code = rpc::code_from_name(req.code());
        if (!code || *code == rpc::Code::ok) {
          co_return rpc::error(rpc::Code::invalid_argument, "unknown code name \"" + req.code() + "\"");
        }
        co_return rpc::error(*code, req.message());
      });

  registry.unary<SleepRequest, EchoResponse>(
      "envdtest.Echo", "Sleep",
      [](rpc::CallContext& ctx, const SleepRequest& req, EchoResponse& resp) -> asio::awaitable<rpc::Status> {
        Running running;
        asio::steady_timer timer(ctx.executor(), std::chrono::milliseconds(req.ms()));
        co_await timer.async_wait(asio::use_awaitable);  // throws when the call is cancelled
        running.done = true;
        resp.set_text("slept");
        co_return rpc::Status{};
      });

  registry.unary<StatsRequest, StatsResponse>(
      "envdtest.Echo", "Stats",
      [](rpc::CallContext&, const StatsRequest& req, StatsResponse& resp) -> asio::awaitable<rpc::Status> {
        resp.set_cancelled(g_stats.cancelled);
        resp.set_running(g_stats.running);
        resp.set_max_loop_lag_us(static_cast<std::uint64_t>(g_stats.max_loop_lag.count()));
        resp.set_max_loop_lag_cpu_us(static_cast<std::uint64_t>(g_stats.max_loop_lag_cpu.count()));
        if (req.reset_loop_lag()) g_stats.max_loop_lag = g_stats.max_loop_lag_cpu = {};
        co_return rpc::Status{};
      });
}

void start_loop_lag_probe(const boost::asio::any_io_executor& ex) {
  namespace asio = boost::asio;
  asio::co_spawn(
      ex,
      []() -> asio::awaitable<void> {
        using clock = std::chrono::steady_clock;
        asio::steady_timer timer(co_await asio::this_coro::executor);
        for (;;) {
          constexpr std::chrono::milliseconds kPeriod(10);
          auto due = clock::now() + kPeriod;
          const auto cpu_before = thread_cpu();
          timer.expires_at(due);
          co_await timer.async_wait(asio::use_awaitable);
          auto late = std::chrono::duration_cast<std::chrono::microseconds>(clock::now() - due);
          g_stats.max_loop_lag = std::max(g_stats.max_loop_lag, late);
          const auto busy = thread_cpu() - cpu_before - std::chrono::duration_cast<std::chrono::microseconds>(kPeriod);
          g_stats.max_loop_lag_cpu = std::max(g_stats.max_loop_lag_cpu, busy);
        }
      },
      asio::detached);
}

}  // namespace envd
