// Accepts connections and sniffs the first bytes: the HTTP/2 client preface selects HTTP/2 with
// prior knowledge; anything else is HTTP/1.1 (which may still upgrade to h2c).
#include <linux/sockios.h>
#include <sys/ioctl.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "envd/http/server.h"
#include "envd/log.h"

namespace envd::http {

using asio::ip::tcp;

namespace {
constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr std::size_t kSniffRead = 1024;

// Reads a new connection's first bytes until they either diverge from the HTTP/2 preface or
// complete it, then spawns the session for that protocol. Callbacks, not a coroutine that awaits
// the session: nothing of the sniffing stays allocated for the connection's life.
class Sniffer : public std::enable_shared_from_this<Sniffer> {
 public:
  Sniffer(tcp::socket socket, ServerContext& ctx)
      : socket_(std::move(socket)), timer_(socket_.get_executor()), ctx_(ctx) {}

  void start() {
    timer_.expires_after(ctx_.config.idle_timeout);
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec) self->socket_.close();  // idle before a request: the pending read fails
    });
    read();
  }

 private:
  void read() {
    std::size_t old = initial_.size();
    initial_.resize(old + kSniffRead);
    socket_.async_read_some(asio::buffer(initial_.data() + old, kSniffRead),
                            [self = shared_from_this(), old](const boost::system::error_code& ec, std::size_t n) {
                              self->initial_.resize(old + n);
                              if (ec) {
                                self->timer_.cancel();
                                return;
                              }
                              self->on_bytes();
                            });
  }

  void on_bytes() {
    std::size_t cmp = std::min(initial_.size(), kPreface.size());
    bool h2_so_far = initial_.compare(0, cmp, kPreface.substr(0, cmp)) == 0;
    if (h2_so_far && initial_.size() < kPreface.size()) {
      if (!head_started_) {
        // A preface trickled in: the rest must arrive within the read timeout, not re-arm it.
        head_started_ = true;
        timer_.expires_after(std::min(ctx_.config.read_timeout, ctx_.config.idle_timeout));
        timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
          if (!ec) self->socket_.close();
        });
      }
      return read();
    }
    timer_.cancel();
    auto ex = socket_.get_executor();
    auto on_done = [](std::exception_ptr e) {
      if (!e) return;
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& err) {
        log::error("http", std::string("connection failed: ") + err.what());
      }
    };
    if (h2_so_far) {
      asio::co_spawn(ex, serve_http2(std::move(socket_), std::move(initial_), ctx_, std::nullopt), on_done);
    } else {
      asio::co_spawn(ex, serve_http1(std::move(socket_), std::move(initial_), ctx_), on_done);
    }
  }

  tcp::socket socket_;
  asio::steady_timer timer_;
  std::string initial_;
  ServerContext& ctx_;
  bool head_started_ = false;
};

struct Tracked {
  std::function<void()> close;
  std::function<bool()> settled;
};
struct Connections {
  std::map<std::uint64_t, Tracked> closers;
  std::uint64_t next = 0;
  bool closing = false;
};
Connections& connections() {
  static Connections c;
  return c;
}

}  // namespace

std::uint64_t track_connection(std::function<void()> close_gracefully, std::function<bool()> settled) {
  auto& c = connections();
  std::uint64_t id = ++c.next;
  // A session that starts while shutting down (sniffed before the acceptor closed) closes at once:
  // the caller must be ready for the call (it registers once its state is set up).
  if (c.closing && close_gracefully) close_gracefully();
  c.closers.emplace(id, Tracked{std::move(close_gracefully), std::move(settled)});
  return id;
}

bool send_queue_empty(int fd) {
  int queued = 0;
  return ::ioctl(fd, SIOCOUTQ, &queued) != 0 || queued == 0;
}

void untrack_connection(std::uint64_t id) { connections().closers.erase(id); }

void close_connections_gracefully() {
  auto& c = connections();
  c.closing = true;
  // A closer may untrack (its connection ends at once): walk a copy of the ids.
  std::vector<std::uint64_t> ids;
  for (const auto& [id, fn] : c.closers) ids.push_back(id);
  for (auto id : ids) {
    auto it = c.closers.find(id);
    if (it != c.closers.end() && it->second.close) it->second.close();
  }
}

std::size_t unsettled_connections() {
  std::size_t n = 0;
  for (const auto& [id, t] : connections().closers) n += (t.settled && t.settled()) ? 0 : 1;
  return n;
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, ServerContext& ctx) {
  // Out of fds (EMFILE/ENFILE) or similar: the pending connection stays in the backlog and the
  // acceptor is readable again at once, so retrying right away would spin. Back off, doubling up
  // to a second, and log one line when an episode starts and one when accepting works again.
  constexpr std::chrono::milliseconds kFirstBackoff{5};
  constexpr std::chrono::milliseconds kMaxBackoff{1000};
  std::chrono::milliseconds backoff{0};
  std::uint64_t failures = 0;
  for (;;) {
    boost::system::error_code ec;
    tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
      if (failures++ == 0) log::warn("http", "accept failed: " + ec.message() + "; retrying with back-off");
      backoff = backoff.count() == 0 ? kFirstBackoff : std::min(backoff * 2, kMaxBackoff);
      asio::steady_timer t(acceptor.get_executor(), backoff);
      co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    if (failures > 0) {
      log::info("http", "accepting connections again after " + std::to_string(failures) + " failed attempts");
      failures = 0;
      backoff = std::chrono::milliseconds(0);
    }
    socket.set_option(tcp::no_delay(true), ec);
    std::make_shared<Sniffer>(std::move(socket), ctx)->start();
  }
}

}  // namespace envd::http
