// HTTP/1.1 sessions (Beast parser, hand-written response framing): keep-alive, pipelining in order,
// chunked request bodies, Expect: 100-continue, chunked streaming responses flushed per write,
// trailers, and the h2c upgrade.
#include <sys/ioctl.h>
#include <sys/sendfile.h>

#include <array>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/basic_parser.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/status.hpp>
#include <cerrno>
#include <cstring>

#include "envd/base64.h"
#include "envd/blocking.h"
#include "envd/event.h"
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

// Parses a request straight into our RequestHead (no second copy of the fields in a Beast
// message), counts fields as they are parsed (a head of 262k tiny fields fails at the cap, not
// after it was stored), and hands body bytes to the buffer read_body() points it at.
class RequestParser final : public bhttp::basic_parser<true> {
 public:
  explicit RequestParser(std::size_t max_count) : max_count_(max_count) {}

  RequestHead head;
  std::size_t host_fields = 0;
  std::size_t te_fields = 0;
  std::string transfer_encoding;  // all Transfer-Encoding fields, joined with ','
  // Where body bytes go; space shrinks as they arrive.
  char* out = nullptr;
  std::size_t space = 0;

 private:
  void on_request_impl(bhttp::verb, beast::string_view method, beast::string_view target, int version,
                       boost::system::error_code&) override {
    head.method.assign(method.data(), method.size());
    head.target.assign(target.data(), target.size());
    auto q = head.target.find('?');
    head.path = head.target.substr(0, q);
    if (q != std::string::npos) head.query = head.target.substr(q + 1);
    head.version = version;
  }
  void on_response_impl(int, beast::string_view, int, boost::system::error_code& ec) override {
    ec = bhttp::error::bad_method;
  }
  void on_field_impl(bhttp::field f, beast::string_view name, beast::string_view value,
                     boost::system::error_code& ec) override {
    if (++count_ > max_count_) {
      ec = bhttp::error::header_limit;
      return;
    }
    if (f == bhttp::field::host) ++host_fields;
    if (f == bhttp::field::transfer_encoding) {
      if (te_fields++ > 0) transfer_encoding += ',';
      transfer_encoding.append(value.data(), value.size());
    }
    head.headers.emplace_back(to_lower({name.data(), name.size()}), std::string(value.data(), value.size()));
  }
  void on_header_impl(boost::system::error_code&) override {
    head.headers.shrink_to_fit();  // the head lives as long as the request (a whole stream)
  }
  void on_body_init_impl(const boost::optional<std::uint64_t>&, boost::system::error_code&) override {}
  std::size_t on_body_impl(beast::string_view body, boost::system::error_code& ec) override {
    return take({body.data(), body.size()}, ec);
  }
  void on_chunk_header_impl(std::uint64_t, beast::string_view, boost::system::error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, beast::string_view body, boost::system::error_code& ec) override {
    return take({body.data(), body.size()}, ec);
  }
  void on_finish_impl(boost::system::error_code&) override {}

  std::size_t take(std::string_view body, boost::system::error_code& ec) {
    std::size_t n = std::min(body.size(), space);
    // Bytes read straight into the destination (Http1Exchange::read_into) are already in place.
    if (n > 0 && out != body.data()) std::memcpy(out, body.data(), n);
    out += n;
    space -= n;
    if (n < body.size()) ec = bhttp::error::need_buffer;  // the caller reads on with a new buffer
    return n;
  }

  std::size_t max_count_;
  std::size_t count_ = 0;
};

// Read deadline of a request body (--read-timeout-ms, --read-min-progress-bytes): only time spent
// waiting in a read counts, so a handler that is slow to ask for more is not charged; each window
// of read_timeout must deliver min_progress bytes (or the rest of the body), so a body trickled a
// byte at a time does not re-arm the deadline forever.
class BodyClock {
 public:
  // A body that delivers nothing for the idle timeout is idle too: the window is the shorter one.
  explicit BodyClock(const ServerConfig& cfg)
      : window_(std::min(cfg.read_timeout, cfg.idle_timeout)),
        min_progress_(cfg.read_min_progress_bytes),
        left_(window_) {}

  void arm(beast::tcp_stream& stream) {
    started_ = std::chrono::steady_clock::now();
    stream.expires_after(left_);
  }
  void account(beast::tcp_stream& stream, std::size_t got) {
    stream.expires_never();
    left_ -= std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
    progress_ += got;
    if (progress_ >= min_progress_) {
      progress_ = 0;
      left_ = window_;
    }
  }

 private:
  std::chrono::milliseconds window_;
  std::size_t min_progress_;
  std::chrono::milliseconds left_;
  std::size_t progress_ = 0;
  std::chrono::steady_clock::time_point started_;
};

// A malformed body (bad chunk framing), as opposed to a client gone or a timeout.
bool is_parse_error(const boost::system::error_code& ec) {
  return ec.category() == bhttp::make_error_code(bhttp::error::bad_chunk).category() &&
         ec != bhttp::error::partial_message && ec != bhttp::error::end_of_stream;
}

asio::awaitable<void> write_plain_error(tcp::socket& sock, int status, std::string_view reason);

class Http1Exchange final : public Exchange {
 public:
  Http1Exchange(beast::tcp_stream& stream, beast::flat_buffer& buf, RequestParser& parser, RequestHead head,
                bool keep_alive, const ServerConfig& cfg)
      : stream_(stream),
        buf_(buf),
        parser_(parser),
        head_(std::move(head)),
        clock_(cfg),
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
    max_bytes = clamp_read(max_bytes);
    // Beast reads the socket into buf_ in pieces of its free capacity (512 bytes after a small
    // head): give a large body room for 64 KiB reads, and take it back once the body is read. A
    // body whose rest is small (or already buffered) never gets it. A Content-Length body read
    // straight from the socket (read_into) does not need it.
    const auto remaining = parser_.content_length_remaining();
    if (max_bytes >= 4096 && !direct_ok() && (!remaining || *remaining >= buf_.size() + 4096) &&
        buf_.capacity() < kBodyReadBytes) {
      buf_.reserve(kBodyReadBytes);
    }
    // resize() zero-fills `out`, so it is not grown (and filled) past what one read can yield:
    // what buf_ holds and has room for, or kBodyReadBytes from the socket (bench: a 1 GiB upload
    // spent 7 % of its time in memset). read_body_into has no such cost.
    max_bytes = std::min(max_bytes, std::max<std::size_t>(direct_ok() ? kBodyReadBytes : buf_.capacity(), 4096));
    std::size_t old = out.size();
    out.resize(old + max_bytes);
    std::size_t got = 0;
    auto r = co_await read_into(out.data() + old, max_bytes, got);
    out.resize(old + got);
    co_return r;
  }

  asio::awaitable<BodyRead> read_body_into(char* dst, std::size_t cap, std::size_t& got) override {
    got = 0;
    if (body_done_) co_return BodyRead::end;
    if (closed_ || cap == 0) co_return BodyRead::error;  // cap 0: a caller's bug, never a spin
    co_return co_await read_into(dst, clamp_read(cap), got);
  }

  asio::awaitable<bool> write_head(ResponseHead head) override {
    if (head_sent_ || closed_) co_return !closed_;
    co_return co_await write_raw(format_head(std::move(head)));
  }

  asio::awaitable<void> respond(int status, Headers headers, std::string body) override {
    if (head_sent_ || closed_) co_return;
    std::string out = format_head(ResponseHead{status, std::move(headers), body.size()});
    if (!no_body_ && !body.empty()) {
      std::array<asio::const_buffer, 2> bufs{asio::buffer(out), asio::buffer(body)};
      if (!co_await write_buffers(bufs)) co_return;
    } else if (!co_await write_raw(std::move(out))) {
      co_return;
    }
    co_await finish({});
  }

  // The head's bytes; records what the head decides (status, chunked, no body).
  std::string format_head(ResponseHead head) {
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
    for (const auto& [n, v] : extra_headers_)
      if (!replaced_by(head.headers, n)) add(n, v);
    // Written: not kept for the rest of a response that may stream for hours.
    Headers().swap(extra_headers_);
    bool no_body =
        head.status == 204 || head.status == 304 || (head.status >= 100 && head.status < 200) || head_.method == "HEAD";
    // Whatever a handler then writes is dropped: bytes after such a head would be read as the next
    // response on the connection (a HEAD refused 401 used to get the jsonError body).
    no_body_ = no_body;
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
    return out;
  }

  asio::awaitable<bool> write_body(std::string data) override {
    if (closed_) co_return false;
    if (data.empty() || no_body_) co_return true;
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

  // Buffered by Beast plus what the socket holds (FIONREAD); chunk framing may be among them.
  std::size_t body_bytes_ready() const override {
    if (body_done_ || closed_) return 0;
    int queued = 0;
    if (::ioctl(stream_.socket().native_handle(), FIONREAD, &queued) != 0 || queued < 0) queued = 0;
    return buf_.size() + static_cast<std::size_t>(queued);
  }

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
    if (length == 0 || no_body_) co_return true;
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

  static constexpr std::size_t kBodyReadBytes = 64 * 1024;

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

  // A Content-Length body never yields more than what is left of it: a small body (a Start's)
  // does not size a buffer for max_bytes.
  std::size_t clamp_read(std::size_t max_bytes) const {
    if (max_bytes == 0) max_bytes = 1;
    const auto remaining = parser_.content_length_remaining();
    if (remaining && *remaining < max_bytes) max_bytes = std::max<std::size_t>(*remaining, 1);
    return max_bytes;
  }

  // Once Beast's buffer holds no more of a Content-Length body, the rest is read from the socket
  // straight into the caller's buffer (no copy through buf_, reads as large as the caller's
  // buffer), then handed to the parser in place so that it counts it (RequestParser::take does
  // not copy bytes onto themselves). Chunked bodies always go through Beast (their framing).
  bool direct_ok() const {
    return !parser_.is_done() && !parser_.chunked() && parser_.content_length_remaining().has_value() &&
           buf_.size() == 0;
  }

  // The next piece of body into dst[0, max_bytes): got > 0 (data), or end, or error.
  asio::awaitable<BodyRead> read_into(char* dst, std::size_t max_bytes, std::size_t& got) {
    got = 0;
    if (expects_continue_ && !continue_sent_) {
      continue_sent_ = true;
      static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
      boost::system::error_code ec;
      co_await asio::async_write(stream_.socket(), asio::buffer(kContinue.data(), kContinue.size()),
                                 asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return mark_closed(), BodyRead::error;
    }
    while (got == 0 && !parser_.is_done()) {
      boost::system::error_code ec;
      clock_.arm(stream_);
      if (direct_ok()) {
        std::size_t n = co_await stream_.async_read_some(asio::buffer(dst, max_bytes),
                                                         asio::redirect_error(asio::use_awaitable, ec));
        clock_.account(stream_, n);
        if (!ec && n > 0) {
          parser_.out = dst;
          parser_.space = n;
          parser_.put(asio::buffer(dst, n), ec);
          got = n - parser_.space;
        } else if (ec == asio::error::eof) {
          ec = bhttp::error::partial_message;  // the client closed before the whole body
        }
      } else {
        parser_.out = dst;
        parser_.space = max_bytes;
        co_await bhttp::async_read_some(stream_, buf_, parser_, asio::redirect_error(asio::use_awaitable, ec));
        got = max_bytes - parser_.space;
        clock_.account(stream_, got);
        if (ec == bhttp::error::need_buffer) ec = {};
      }
      if (ec) {
        got = 0;
        body_failed_ = true;
        if (is_parse_error(ec) && !head_sent_) {
          // A malformed body is the client's error: say so (400) before closing.
          log::debug("http", "bad HTTP/1.1 request body: " + ec.message());
          head_sent_ = true;
          response_status_ = 400;
          co_await write_plain_error(stream_.socket(), 400, "Bad Request");
        }
        // Cancelled by the handler (an upload's idle bound): the client is still there and gets
        // the handler's answer; the connection closes after it, as the body was not read.
        if (ec != asio::error::operation_aborted) mark_closed();
        co_return BodyRead::error;
      }
    }
    if (parser_.is_done()) {
      body_done_ = true;
      if (buf_.capacity() >= kBodyReadBytes && buf_.size() < 4096) buf_.shrink_to_fit();
      start_watch();
    }
    if (got > 0) co_return BodyRead::data;
    co_return BodyRead::end;
  }

  beast::tcp_stream& stream_;
  beast::flat_buffer& buf_;
  RequestParser& parser_;
  RequestHead head_;
  BodyClock clock_;
  Event watch_done_;
  asio::cancellation_signal watch_cancel_;
  bool keep_alive_;
  bool closed_ = false;
  bool body_done_ = false;
  bool body_failed_ = false;
  bool expects_continue_ = false;
  bool continue_sent_ = false;
  bool chunked_ = false;
  bool no_body_ = false;  // the response head said there is no body (HEAD, 1xx, 204, 304)
  bool finished_ = false;
  bool watching_ = false;
  bool stop_watching_ = false;
};

bool is_h2c_upgrade(const RequestHead& req) {
  auto upgrade = req.header("upgrade");
  auto connection = req.header("connection");
  return upgrade && connection && req.header("http2-settings") && token_list_contains(*upgrade, "h2c") &&
         token_list_contains(*connection, "upgrade") && token_list_contains(*connection, "http2-settings");
}

// Framing checks Beast leaves to us (RFC 9112 §3.2, §6.1, §6.3). Returns the status to refuse the
// request with (the connection then closes), or 0.
int framing_error(const RequestParser& p) {
  // Host: exactly one on HTTP/1.1; never two (HTTP/1.0 may omit it), as Go's server.
  if (p.host_fields > 1 || (p.head.version >= 11 && p.host_fields == 0)) return 400;
  if (p.te_fields == 0) return 0;
  // An HTTP/1.0 message with Transfer-Encoding has faulty framing.
  if (p.head.version < 11) return 400;
  std::vector<std::string> codings;
  std::string_view rest = p.transfer_encoding;
  while (true) {
    auto comma = rest.find(',');
    std::string_view item = rest.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (!item.empty()) codings.push_back(to_lower(item));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  // The body length cannot be known unless chunked is the final coding: 400. Codings before it
  // (gzip, chunked) are not implemented: 501, as Go's server answers.
  if (codings.empty() || codings.back() != "chunked") return 400;
  if (codings.size() > 1) return 501;
  return 0;
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
asio::awaitable<bool> upgrade_to_h2c(beast::tcp_stream& stream, beast::flat_buffer& buf, RequestParser& parser,
                                     ServerContext& ctx) {
  boost::system::error_code ec;
  auto settings = base64_decode(*parser.head.header("http2-settings"), Base64::url_unpadded);
  // The head moves on to stream 1: it is held once, not also in the parser.
  UpgradedRequest up{std::move(parser.head), {}, settings.value_or("")};
  bool ok = settings.has_value();
  // Read the whole (small) body over HTTP/1.1 before switching; it becomes stream 1's body. Its
  // reads have the same deadline as any request body's.
  BodyClock clock(ctx.config);
  constexpr std::size_t kStep = 16 * 1024;
  while (ok && !parser.is_done()) {
    std::size_t old = up.body.size();
    up.body.resize(old + kStep);
    parser.out = up.body.data() + old;
    parser.space = kStep;
    clock.arm(stream);
    co_await bhttp::async_read_some(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    clock.account(stream, kStep - parser.space);
    if (ec == bhttp::error::need_buffer) ec = {};
    up.body.resize(old + kStep - parser.space);
    if (ec) {
      if (is_parse_error(ec)) co_await write_plain_error(stream.socket(), 400, "Bad Request");
      co_return false;  // the client is gone, too slow, or sent a malformed body
    }
    if (up.body.size() > ctx.config.upgrade_body_limit) ok = false;
  }
  if (!ok) {
    co_await write_plain_error(stream.socket(), settings ? 413 : 400, settings ? "Payload Too Large" : "Bad Request");
    co_return false;
  }
  up.body.shrink_to_fit();
  static constexpr std::string_view k101 =
      "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
  co_await asio::async_write(stream.socket(), asio::buffer(k101.data(), k101.size()),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) co_return true;
  std::string rest(static_cast<const char*>(buf.data().data()), buf.size());
  // serve_http1's frame (and this buffer) lives as long as the HTTP/2 connection: empty it.
  buf.consume(buf.size());
  buf.shrink_to_fit();
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
  // Shutdown (server.h): an idle connection sends FIN now and reads until the client closes; a
  // busy one ends after its request.
  struct Closing {
    beast::tcp_stream& stream;
    bool idle = false;
    bool requested = false;
    bool fin_sent = false;
    std::uint64_t id = 0;
    ~Closing() { untrack_connection(id); }
  } closing{stream};
  closing.id = track_connection(
      [&closing] {
        closing.requested = true;
        boost::system::error_code ignored;
        if (closing.idle) {
          closing.stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
          closing.fin_sent = true;
        }
      },
      [&closing] {
        return closing.fin_sent &&
               (!closing.stream.socket().is_open() || send_queue_empty(closing.stream.socket().native_handle()));
      });
  for (;;) {
    RequestParser parser(ctx.config.max_header_count);
    parser.header_limit(static_cast<std::uint32_t>(std::min<std::size_t>(ctx.config.max_header_bytes, UINT32_MAX)));
    parser.body_limit(boost::none);  // bodies are streamed; the RPC layer limits messages
    boost::system::error_code ec;
    if (buf.size() == 0) {
      // Between requests: wait for the next one's first byte up to the idle timeout...
      if (closing.requested) break;
      stream.expires_after(ctx.config.idle_timeout);
      closing.idle = true;
      std::size_t n = co_await stream.async_read_some(buf.prepare(1024), asio::redirect_error(asio::use_awaitable, ec));
      closing.idle = false;
      stream.expires_never();
      if (ec || closing.requested) break;
      buf.commit(n);
    }
    // ...then the whole head must arrive within the read timeout (a head trickled a byte at a
    // time does not re-arm it).
    stream.expires_after(std::min(ctx.config.read_timeout, ctx.config.idle_timeout));
    co_await bhttp::async_read_header(stream, buf, parser, asio::redirect_error(asio::use_awaitable, ec));
    stream.expires_never();
    // The buffer grew to hold the head; what is left is at most the start of the body.
    if (buf.capacity() > 64 * 1024 && buf.size() < 16 * 1024) buf.shrink_to_fit();
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
    if (int status = framing_error(parser)) {
      log::debug("http", "refused HTTP/1.1 request framing (" + std::to_string(status) + ")");
      co_await write_plain_error(stream.socket(), status, status == 501 ? "Not Implemented" : "Bad Request");
      break;
    }
    bool keep_alive = parser.keep_alive();

    if (is_h2c_upgrade(parser.head)) {
      // Hands the connection to HTTP/2 (then returns true) or answers an error.
      if (co_await upgrade_to_h2c(stream, buf, parser, ctx)) co_return;
      break;
    }
    // The head moves into the exchange: the parser keeps no copy of the fields.
    Http1Exchange ex(stream, buf, parser, std::move(parser.head), keep_alive, ctx.config);
    try {
      co_await ctx.handler(ex);
    } catch (const std::exception& e) {
      log::error("http", std::string("request handler failed: ") + e.what());
    }
    if (!co_await ex.complete()) break;
  }
  closing.fin_sent = true;  // linger_and_close sends it first
  co_await linger_and_close(stream);
}

}  // namespace envd::http
