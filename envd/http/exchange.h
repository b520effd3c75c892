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

  // Sends the response head. Headers in extra_headers() are appended. May be called once.
  virtual asio::awaitable<bool> write_head(ResponseHead head) = 0;
  // Sends one piece of body and flushes it. Suspends while the peer is slow (back-pressure).
  // Returns false once the client is gone.
  virtual asio::awaitable<bool> write_body(std::string data) = 0;
  // Ends the response, with trailers if the transport can carry them (HTTP/2, chunked HTTP/1.1).
  virtual asio::awaitable<void> finish(Headers trailers = {}) = 0;

  // True once the client went away (connection closed, stream reset).
  virtual bool closed() const = 0;
  // Breaks a response whose head is out but whose body cannot be completed (a file that shrank or
  // failed to read mid-download): the client must see a failed transfer, never a short body that
  // looks complete. HTTP/1.1 closes the connection without the final chunk (or short of
  // Content-Length); HTTP/2 resets the stream. finish() does nothing afterwards.
  virtual void abort() {}
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
  Headers& extra_headers() { return extra_headers_; }

  // Convenience: whole response with a known body.
  asio::awaitable<void> respond(int status, Headers headers, std::string body);

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
};

// Reads the whole request body, refusing more than `limit` bytes.
asio::awaitable<BodyRead> read_whole_body(Exchange& ex, std::string& out, std::size_t limit);

}  // namespace envd::http
