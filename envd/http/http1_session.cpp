// HTTP/1.1 sessions (Beast parser, hand-written response framing): keep-alive, pipelining in order,
// chunked request bodies, Expect: 100-continue, chunked streaming responses flushed per write,
// trailers, and the h2c upgrade.
#include <sys/sendfile.h>

#include <array>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <cerrno>

#include "envd/base64.h"
#include "envd/blocking.h"
#include "envd/http/event.h"
#include "envd/http/server.h"
#include "envd/log.h"

namespace envd::http {

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using asio::ip::tcp;

namespace {

constexpr std::size_t kMaxPipelineBuffer = 64 * 1024;
// Lingering close bounds. The byte bound must exceed what a client can still have in flight after
// a header or body limit trips (kernel buffers on both sides of a loopback hold several MiB), or
// the close with unread data resets the connection and the client loses our answer.
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr std::size_t kLingerBytes = 16 * 1024 * 1024;

bool token_list_contains(std::string_view list, std::string_view token) {
  std::string lower = to_lower(list);
  std::string_view rest = lower;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    if (item == token) return true;
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return false;
}

// "content-type" → "Content-Type" (HTTP/1.1 names are case-insensitive; this is for readers).
std::string canonical_name(std::string_view lower) {
  std::string out(lower);
  bool up = true;
  for (char& c : out) {
    if (up && c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    up = (c == '-');
  }
  return out;
}

class Http1Exchange final : public Exchange {
 public:
  Http1Exchange(beast::tcp_stream& stream, beast::flat_buffer& buf, bhttp::request_parser<bhttp::buffer_body>& parser,
                RequestHead head, bool keep_alive)
      : stream_(stream),
        buf_(buf),
        parser_(parser),
        head_(std::move(head)),
        watch_done_(stream.get_executor()),
        keep_alive_(keep_alive) {
    body_done_ = parser_.is_done();
    if (auto e = head_.header("expect")) expects_continue_ = to_lower(*e) == "100-continue";
    if (body_done_) start_watch();
  }

  const RequestHead& request() const override { return head_; }
  asio::any_io_executor executor() const override { return stream_.get_executor(); }

  asio::awaitable<BodyRead> read_body(std::string& out, std::size_t max_bytes) override {
    if (body_done_) co_return BodyRead::end;
    if (closed_) co_return BodyRead::error;
    if (expects_continue_ && !continue_sent_) {
      continue_sent_ = true;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      boost::system::error_code ec;
      co_await asio::async_write(stream_.socket(), asio::buffer(kContinue.data(), kContinue.size()),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return mark_closed(), BodyRead::error;
    }
    if (max_bytes == 0) max_bytes = 1;
    std::size_t old = out.size();
    out.resize(old + max_bytes);
    std::size_t got = 0;
    while (got == 0 && !parser_.is_done()) {
      auto& body = parser_.get().body();
      body.data = out.data() + old;
      body.size = max_bytes;
      boost::system::error_code ec;
      stream_.expires_after(idle_timeout_);
      co_await bhttp::async_read_some(stream_, buf_, parser_, asio::redirect_error(asio::use_awaitable, ec));
      stream_.expires_never();
      got = max_bytes - parser_.get().body().size;
      if (ec == bhttp::error::need_buffer) ec = {};
      if (ec) {
        out.resize(old);
        body_failed_ = true;
        mark_closed();
        co_return BodyRead::error;
      }
    }
    out.resize(old + got);
    if (parser_.is_done()) {
      body_done_ = true;
      start_watch();
    }
    if (got > 0) co_return BodyRead::data;
    co_return BodyRead::end;
  }

  asio::awaitable<bool> write_head(ResponseHead head) override {
    if (head_sent_ || closed_) co_return !closed_;
    head_sent_ = true;
    response_status_ = head.status;
    std::string out = "HTTP/1.1 " + std::to_string(head.status) + " ";
    out += std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(head.status)));
    out += "\r\n";
    auto add = [&](const std::string& name, const std::string& value) {
      out += canonical_name(name);
      out += ": ";
      out += value;
      out += "\r\n";
    };
    for (const auto& [n, v] : head.headers) add(n, v);
    for (const auto& [n, v] : extra_headers_) add(n, v);
    bool no_body =
        head.status == 204 || head.status == 304 || (head.status >= 100 && head.status < 200) || head_.method == "HEAD";
    if (head.content_length) {
      if (!no_body || head.status == 304 || head_.method == "HEAD")
        add("content-length", std::to_string(*head.content_length));
    } else if (!no_body) {
      if (head_.version >= 11) {
        chunked_ = true;
        add("transfer-encoding", "chunked");
      } else {
        keep_alive_ = false;  // HTTP/1.0 without a length: the body ends at close
      }
    }
    if (!keep_alive_) add("connection", "close");
    out += "\r\n";
    co_return co_await write_raw(std::move(out));
  }

  asio::awaitable<bool> write_body(std::string data) override {
    if (closed_) co_return false;
    if (data.empty()) co_return true;
    if (!chunked_) co_return co_await write_raw(std::move(data));
    char size_line[24];
    int n = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
    std::array<asio::const_buffer, 3> bufs{asio::buffer(size_line, static_cast<std::size_t>(n)), asio::buffer(data),
                                           asio::buffer("\r\n", 2)};
    co_return co_await write_buffers(bufs);
  }

  asio::awaitable<void> finish(Headers trailers) override {
    if (finished_) co_return;
    finished_ = true;
    if (closed_ || !chunked_) co_return;
    std::string out = "0\r\n";
    for (const auto& [n, v] : trailers) out += canonical_name(n) + ": " + v + "\r\n";
    out += "\r\n";
    co_await write_raw(std::move(out));
  }

  bool closed() const override { return closed_; }

  void abort_response() override {
    keep_alive_ = false;
    boost::system::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    mark_closed();
  }

  // sendfile(2) from the file to the socket, kernel to kernel. Each call runs on the blocking pool
  // with the socket non-blocking: the socket side never blocks (EAGAIN → the loop waits for
  // writability), and the file side, which can block forever on NFS, FUSE or a frozen
  // filesystem, blocks a pool thread instead of the loop. One pool round trip per call (up to
  // kSendfileChunk bytes) costs a few microseconds.
  asio::awaitable<bool> write_file(int fd, std::uint64_t offset, std::uint64_t length) override {
    constexpr std::size_t kSendfileChunk = 4u << 20;
    if (closed_) co_return false;
    if (length == 0) co_return true;
    if (chunked_) {
      char size_line[24];
      int n = std::snprintf(size_line, sizeof size_line, "%llx\r\n", static_cast<unsigned long long>(length));
      if (!co_await write_raw(std::string(size_line, static_cast<std::size_t>(n)))) co_return false;
    }
    auto& sock = stream_.socket();
    boost::system::error_code ec;
    sock.native_non_blocking(true, ec);
    if (ec) co_return abort_response(), false;
    const int sfd = sock.native_handle();
    off_t off = static_cast<off_t>(offset);
    while (length > 0) {
      const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(length, kSendfileChunk));
      auto job = [sfd, fd, &off, want]() -> ssize_t {
        ssize_t n = ::sendfile(sfd, fd, &off, want);
        return n < 0 ? -errno : n;
      };
      ssize_t n = co_await run_blocking(WorkClass::data, job);
      if (n > 0) {
        length -= static_cast<std::uint64_t>(n);
        continue;
      }
      if (n == -EINTR) continue;
      if (n == -EAGAIN) {
        co_await sock.async_wait(tcp::socket::wait_write, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) co_return mark_closed(), false;
        continue;
      }
      // 0: the file ended before `length`; EPIPE/ECONNRESET: the client went away; others: I/O
      // error. The body cannot be completed either way.
      co_return abort_response(), false;
    }
    if (chunked_) co_return co_await write_raw(std::string("\r\n"));
    co_return true;
  }

  // After the handler: make sure a response went out, stop the watcher, and tell whether the
  // connection can carry another request.
  asio::awaitable<bool> complete() {
    if (!head_sent_ && !closed_) {
      Headers h{{"content-type", "text/plain; charset=utf-8"}};
      co_await respond(500, std::move(h), std::string("internal error: no response\n"));
    } else if (!finished_) {
      co_await finish({});
    }
    co_await stop_watch();
    if (closed_ || !keep_alive_ || body_failed_) co_return false;
    if (!body_done_) {
      // The handler did not read the whole body. If the client still waits for 100-continue it will
      // not send it; otherwise drain a bounded amount so the next request can be parsed.
      if (expects_continue_ && !continue_sent_) co_return false;
      std::string sink;
      std::size_t drained = 0;
      while (!body_done_ && drained < (1u << 20)) {
        sink.clear();
        if (co_await read_body(sink, 64 * 1024) == BodyRead::error) co_return false;
        drained += sink.size();
      }
      if (!body_done_) co_return false;
      co_await stop_watch();
    }
    co_return !closed_;
  }

  std::chrono::milliseconds idle_timeout_{640'000};

 private:
  void mark_closed() {
    closed_ = true;
    notify_closed();
  }

  asio::awaitable<bool> write_raw(std::string data) {
    std::array<asio::const_buffer, 1> bufs{asio::buffer(data)};
    co_return co_await write_buffers(bufs);
  }

  template <class Buffers>
  asio::awaitable<bool> write_buffers(const Buffers& bufs) {
    boost::system::error_code ec;
    // Not cancellable: a half-written chunk would corrupt the stream for the error frame after it.
    co_await asio::async_write(
        stream_.socket(), bufs,
        asio::bind_cancellation_slot(asio::cancellation_slot(), asio::redirect_error(asio::use_awaitable, ec)));
    if (ec) {
      mark_closed();
      co_return false;
    }
    co_return true;
  }

  // Once the request body is complete, keep a read pending so that a client that goes away is
  // noticed while a long response streams. Pipelined bytes are kept for the next request.
  void start_watch() {
    if (watching_ || closed_) return;
    watching_ = true;
    stop_watching_ = false;
    watch_done_.reset();
    watch_next();
  }

  // The flag closes the gap where the cancellation is emitted after a read completed but before
  // this coroutine resumed: the emit then cancels nothing, and the loop must not start another read.
  asio::awaitable<void> stop_watch() {
    if (!watching_) co_return;
    stop_watching_ = true;
    watch_cancel_.emit(asio::cancellation_type::all);
    co_await watch_done_.wait();
  }

  // One small read at a time, as a callback chain rather than a coroutine: no frame per open
  // stream. The exchange outlives the chain (stop_watch() waits for watch_done_).
  void watch_next() {
    if (closed_ || stop_watching_ || buf_.size() >= kMaxPipelineBuffer) return watch_finished();
    // Mostly waits for EOF; small, as it stays allocated while a response streams.
    stream_.socket().async_read_some(
        buf_.prepare(512),
        asio::bind_cancellation_slot(watch_cancel_.slot(), [this](const boost::system::error_code& ec, std::size_t n) {
          if (ec) {
            if (ec != asio::error::operation_aborted) mark_closed();
            return watch_finished();
          }
          buf_.commit(n);
          watch_next();
        }));
  }

  void watch_finished() {
    watching_ = false;
    watch_done_.set();
  }

  beast::tcp_stream& stream_;
  beast::flat_buffer& buf_;
  bhttp::request_parser<bhttp::buffer_body>& parser_;
  RequestHead head_;
  Event watch_done_;
  asio::cancellation_signal watch_cancel_;
  bool keep_alive_;
  bool closed_ = false;
  bool body_done_ = false;
  bool body_failed_ = false;
  bool expects_continue_ = false;
  bool continue_sent_ = false;
  bool chunked_ = false;
  bool finished_ = false;
  bool watching_ = false;
  bool stop_watching_ = false;
};

RequestHead make_head(const bhttp::request_parser<bhttp::buffer_body>& parser) {
  const auto& req = parser.get();
  RequestHead head;
  head.method = std::string(req.method_string());
  head.target = std::string(req.target());
  auto q = head.target.find('?');
  head.path = head.target.substr(0, q);
  if (q != std::string::npos) head.query = head.target.substr(q + 1);
  head.version = static_cast<int>(req.version());
  // Exact size: the head lives as long as the request (a whole stream).
  head.headers.reserve(static_cast<std::size_t>(std::distance(req.begin(), req.end())));
  for (const auto& f : req) head.headers.emplace_back(to_lower(f.name_string()), std::string(f.value()));
  return head;
}

bool is_h2c_upgrade(const bhttp::request<bhttp::buffer_body>& req) {
  auto upgrade = req.find(bhttp::field::upgrade);
  auto connection = req.find(bhttp::field::connection);
  return upgrade != req.end() && connection != req.end() && req.find("http2-settings") != req.end() &&
         token_list_contains(upgrade->value(), "h2c") && token_list_contains(connection->value(), "upgrade") &&
         token_list_contains(connection->value(), "http2-settings");
}

asio::awaitable<void> write_plain_error(tcp::socket& sock, int status, std::string_view reason) {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) +
                    "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: " +
                    std::to_string(reason.size() + 1) + "\r\n\r\n" + std::string(reason) + "\n";
  boost::system::error_code ec;
  co_await asio::async_write(sock, asio::buffer(out), asio::redirect_error(asio::use_awaitable, ec));
}

}  // namespace

namespace {

// The h2c upgrade (RFC 7540 §3.2): reads the (small) request body over HTTP/1.1, answers 101 and
// serves HTTP/2 on the connection with the request as stream 1. Returns false when it answered an
// error instead. Its own coroutine, so serve_http1's long-lived frame does not carry its locals.
asio::awaitable<bool> upgrade_to_h2c(beast::tcp_stream& stream, beast::flat_buffer& buf,
                                     bhttp::request_parser<bhttp::buffer_body>& parser, ServerContext& ctx) {
  boost::system::error_code ec;
  RequestHead head = make_head(parser);
  auto settings = base64_decode(*head.header("http2-settings"), Base64::url_unpadded);
  UpgradedRequest up{std::move(head), {}, settings.value_or("")};
  bool ok = settings.has_value();
  // Read the whole (small) body over HTTP/1.1 before switching; it becomes stream 1's body.
  constexpr std::size_t kStep = 16 * 1024;
  while (ok && !parser.is_done()) {
    std::size_t old = up.body.size();
    up.body.resize(old + kStep);
    parser.get().body().data = up.body.data() + old;
    parser.get().body().size = kStep;
    co_await bhttp::async_read_some(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    if (ec == bhttp::error::need_buffer) ec = {};
    if (ec) co_return true;  // the client is gone: nothing to answer
    up.body.resize(old + kStep - parser.get().body().size);
    if (up.body.size() > ctx.config.upgrade_body_limit) ok = false;
  }
  if (!ok) {
    co_await write_plain_error(stream.socket(), settings ? 413 : 400, settings ? "Payload Too Large" : "Bad Request");
    co_return false;
  }
  static constexpr std::string_view k101 =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  co_await asio::async_write(stream.socket(), asio::buffer(k101.data(), k101.size()),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return true;
  std::string rest(static_cast<const char*>(buf.data().data()), buf.size());
  co_await serve_http2(stream.release_socket(), std::move(rest), ctx, std::move(up));
  co_return true;
}

// Lingering close: send FIN first and read what the client still sends (bounded in bytes and
// time), so a client still writing its request sees our answer (a 400 or 431) instead of a reset
// caused by closing a socket with unread data.
asio::awaitable<void> linger_and_close(beast::tcp_stream& stream) {
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
  std::size_t drained = 0;
  // Discarded bytes: one buffer for all connections (single event loop), not 64 KiB in a frame.
  static std::array<char, 64 * 1024> sink;
  stream.expires_after(kLingerTime);
  while (drained < kLingerBytes) {
    boost::system::error_code ec;
    drained += co_await stream.async_read_some(asio::buffer(sink), asio::redirect_error(asio::use_awaitable, ec));
    if (ec) break;
  }
  stream.socket().close(ignored);
}

}  // namespace

asio::awaitable<void> serve_http1(tcp::socket socket, std::string initial, ServerContext& ctx) {
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buf;
  {
    auto b = buf.prepare(initial.size());
    asio::buffer_copy(b, asio::buffer(initial));
    buf.commit(initial.size());
    std::string().swap(initial);  // a parameter lives in the frame for the connection's life
  }
  for (;;) {
    bhttp::request_parser<bhttp::buffer_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(ctx.config.max_header_bytes, UINT32_MAX)));
    parser.body_limit(boost::none);  // bodies are streamed; the RPC layer limits messages
    boost::system::error_code ec;
    stream.expires_after(ctx.config.idle_timeout);
    co_await bhttp::async_read_header(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    stream.expires_never();
    if (ec) {
      if (ec == bhttp::error::header_limit) {
        co_await write_plain_error(stream.socket(), 431, "Request Header Fields Too Large");
      } else if (ec != bhttp::error::end_of_stream && ec != asio::error::eof && ec != beast::error::timeout &&
                 ec != asio::error::connection_reset && ec != asio::error::operation_aborted &&
                 ec != bhttp::error::partial_message) {
        log::debug("http", "bad HTTP/1.1 request: " + ec.message());
        co_await write_plain_error(stream.socket(), 400, "Bad Request");
      }
      break;
    }
    bool keep_alive = parser.get().keep_alive();

    if (is_h2c_upgrade(parser.get())) {
      // Hands the connection to HTTP/2 (then returns true) or answers an error.
      if (co_await upgrade_to_h2c(stream, buf, parser, ctx)) co_return;
      break;
    }
    // The head is built straight into the exchange (a named local would sit in this frame), and
    // the parser's own copy of the fields is not needed for reading the body.
    Http1Exchange ex(stream, buf, parser, make_head(parser), keep_alive);
    parser.get().clear();
    ex.idle_timeout_ = ctx.config.idle_timeout;
    try {
      co_await ctx.handler(ex);
    } catch (const std::exception& e) {
      log::error("http", std::string("request handler failed: ") + e.what());
    }
    if (!co_await ex.complete()) break;
  }
  co_await linger_and_close(stream);
}

}  // namespace envd::http
