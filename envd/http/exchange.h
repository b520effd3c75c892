#pragma once
// One HTTP request/response pair, independent of the HTTP version that carried it. The HTTP/1.1
// and HTTP/2 sessions implement it; the router, REST handlers and the RPC layer only see this.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "envd/ascii.h"
#include "envd/request_scope.h"

namespace envd::http {

namespace asio = boost::asio;

// Header names are stored lowercase (HTTP/2 requires it; HTTP/1.1 names are case-insensitive).
using Headers = std::vector<std::pair<std::string, std::string>>;

std::optional<std::string_view> find_header(const Headers& headers, std::string_view lower_name);
std::string to_lower(std::string_view s);

struct RequestHead {
  std::string method;
  std::string target;  // as sent: path plus optional ?query
  std::string path;    // target up to '?'
  std::string query;   // after '?', raw
  Headers headers;
  int version = 11;  // 10, 11 or 20

  std::optional<std::string_view> header(std::string_view lower_name) const { return find_header(headers, lower_name); }
};

struct ResponseHead {
  int status = 200;
  Headers headers;
  // Known body length: sent as Content-Length. Unknown: chunked on HTTP/1.1, DATA frames on h2.
  std::optional<std::uint64_t> content_length;
  // No body follows (content_length 0): HTTP/2 ends the stream with the HEADERS frame itself, as
  // a gRPC trailers-only response must; HTTP/1.1 sends Content-Length: 0 as usual.
  bool headers_only = false;
};

enum class BodyRead { data, end, error, too_large };

class Exchange {
 public:
  virtual ~Exchange() = default;

  virtual const RequestHead& request() const = 0;
  virtual asio::any_io_executor executor() const = 0;

  // Appends the next piece of the request body (at most max_bytes) to `out`.
  // Returns data (something was appended), end (body complete) or error (client gone / bad body).
  virtual asio::awaitable<BodyRead> read_body(std::string& out, std::size_t max_bytes) = 0;
  // Few-copy variant for uploads: `piece` views the next piece of the body (at most max_bytes),
  // valid until the next read_body_some/read_body call on this exchange. The bytes are received
  // straight into a buffer the exchange reuses (HTTP/1.1: the parser writes into it), so a
  // handler can hand the view to a pool job that writes it to disk without copying it first.
  virtual asio::awaitable<BodyRead> read_body_some(std::string_view& piece, std::size_t max_bytes);
  // Caller-owned variant for uploads: stores the next piece of the body (at most cap bytes, cap
  // > 0) at dst and sets `got` to its length (0 unless data). Nothing is zero-filled, and
  // HTTP/1.1 reads a Content-Length body from the socket straight into dst, as much as is there
  // up to cap (one copy, kernel → dst).
  virtual asio::awaitable<BodyRead> read_body_into(char* dst, std::size_t cap, std::size_t& got);
  // Request bytes that a read_body would get now without waiting for the client (a lower bound:
  // 0 when unknown). Lets an upload fill a larger piece only while that costs no wait.
  virtual std::size_t body_bytes_ready() const { return 0; }

  // Sends the response head. Headers in extra_headers() are appended. May be called once.
  virtual asio::awaitable<bool> write_head(ResponseHead head) = 0;
  // Sends one piece of body and flushes it. Suspends while the peer is slow (back-pressure).
  // Returns false once the client is gone.
  virtual asio::awaitable<bool> write_body(std::string data) = 0;
  // Sends `length` bytes of the open file `fd` from `offset` as the next piece of the body (after
  // write_head; the caller keeps fd open until this returns). Returns false once the client is
  // gone, or when the file could not supply the bytes (shorter than promised, read error): then
  // the response is aborted (connection closed / stream reset), as its length cannot be met.
  // HTTP/1.1 uses sendfile(2); the default (HTTP/2) reads chunks on the blocking pool.
  virtual asio::awaitable<bool> write_file(int fd, std::uint64_t offset, std::uint64_t length);
  // Ends the response, with trailers if the transport can carry them (HTTP/2, chunked HTTP/1.1).
  virtual asio::awaitable<void> finish(Headers trailers = {}) = 0;

  // True once the client went away (connection closed, stream reset).
  virtual bool closed() const = 0;
  // Gives up on a response whose body cannot be completed: the client must see it incomplete
  // (HTTP/1.1: the connection is closed; HTTP/2: RST_STREAM), never a short body that looks whole.
  virtual void abort_response() {}
  // This request's cancellation (envd/request_scope.h): cancelled when the client goes away (and
  // by the RPC layer at a deadline, by the router at shutdown). Register with scope().on_cancel();
  // pass scope().token() to pool jobs. The router installs it; without one (a handler run by a
  // unit test) the first call makes one.
  RequestScope& scope() {
    if (!scope_) set_scope(std::make_shared<RequestScope>(executor()));
    return *scope_;
  }
  const std::shared_ptr<RequestScope>& scope_ptr() {
    scope();
    return scope_;
  }
  void set_scope(std::shared_ptr<RequestScope> s) {
    scope_ = std::move(s);
    if (scope_ && closed()) scope_->cancel(CancelReason::client_gone);
  }

  // Set by the router for log lines about this request.
  const std::string& request_id() const { return request_id_; }
  void set_request_id(std::string id) { request_id_ = std::move(id); }

  bool head_sent() const { return head_sent_; }
  // Status of the response head sent (0 before write_head), for request logs.
  int response_status() const { return response_status_; }
  // Headers added by the layers around the handler (CORS, the version header): sent after the
  // handler's own, except where the handler sets one of the same name, which replaces it (as a
  // Go handler's Header().Set replaces the middleware's: /files' `Vary: Accept-Encoding` is the
  // only Vary, not a second one beside `Vary: Origin`).
  Headers& extra_headers() { return extra_headers_; }
  // Whether the extra header `name` gives way to one of the handler's `head` headers.
  static bool replaced_by(const Headers& head, std::string_view name) {
    for (const auto& h : head)
      if (ascii::iequals(h.first, name)) return true;
    return false;
  }

  // Convenience: whole response with a known body. HTTP/1.1 sends head and body in one write: a
  // client whose deadline falls between two segments would see a head with no body (a Connect
  // error without its JSON).
  virtual asio::awaitable<void> respond(int status, Headers headers, std::string body);

 protected:
  // Sessions call this when the client goes away (the scope posts its callbacks: they never run
  // inside the session code that noticed).
  void notify_closed() {
    if (scope_) scope_->cancel(CancelReason::client_gone);
  }

  bool head_sent_ = false;
  int response_status_ = 0;
  std::string request_id_;
  Headers extra_headers_;

 private:
  std::shared_ptr<RequestScope> scope_;
  std::string piece_buf_;  // read_body_some's buffer, reused
};

// Reads the whole request body, refusing more than `limit` bytes.
asio::awaitable<BodyRead> read_whole_body(Exchange& ex, std::string& out, std::size_t limit);

}  // namespace envd::http
