// Accepts connections and sniffs the first bytes: the HTTP/2 client preface selects HTTP/2 with
// prior knowledge; anything else is HTTP/1.1 (which may still upgrade to h2c).
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "envd/http/server.h"
#include "envd/log.h"

namespace envd::http {

using asio::ip::tcp;

namespace {
constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

struct ConnectionCount {
  explicit ConnectionCount(ServerContext& c) : ctx(c) { ++ctx.open_connections; }
  ~ConnectionCount() { --ctx.open_connections; }
  ServerContext& ctx;
};
}  // namespace

asio::awaitable<void> serve_connection(tcp::socket socket, ServerContext& ctx) {
  ConnectionCount count(ctx);
  boost::beast::tcp_stream stream(std::move(socket));
  std::string initial;
  // Read until the bytes either diverge from the preface or complete it. The bytes go straight
  // into `initial` (no array here: this frame lives as long as the connection).
  for (;;) {
    boost::system::error_code ec;
    stream.expires_after(ctx.config.idle_timeout);
    std::size_t old = initial.size();
    initial.resize(old + 1024);
    std::size_t n = co_await stream.async_read_some(asio::buffer(initial.data() + old, 1024),
                                                    asio::redirect_error(asio::use_awaitable, ec));
    initial.resize(old + n);
    if (ec) co_return;
    std::size_t cmp = std::min(initial.size(), kPreface.size());
    if (initial.compare(0, cmp, kPreface.substr(0, cmp)) != 0) break;  // not HTTP/2
    if (initial.size() >= kPreface.size()) break;
  }
  stream.expires_never();
  try {
    if (initial.size() >= kPreface.size() && initial.compare(0, kPreface.size(), kPreface) == 0) {
      co_await serve_http2(stream.release_socket(), std::move(initial), ctx, std::nullopt);
    } else {
      co_await serve_http1(stream.release_socket(), std::move(initial), ctx);
    }
  } catch (const std::exception& e) {
    log::error("http", std::string("connection failed: ") + e.what());
  }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, ServerContext& ctx) {
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      log::warn("http", "accept failed: " + ec.message());
      // Out of fds or similar: back off briefly instead of spinning.
      asio::steady_timer t(acceptor.get_executor(), std::chrono::milliseconds(50));
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    socket.set_option(tcp::no_delay(true), ec);
    asio::co_spawn(acceptor.get_executor(), serve_connection(std::move(socket), ctx), asio::detached);
  }
}

}  // namespace envd::http
