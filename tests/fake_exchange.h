#pragma once
// An in-memory http::Exchange for unit tests: the request body is given up front (optionally in
// pieces), the response head, body and trailers are recorded.
#include <boost/asio/io_context.hpp>
#include <deque>

#include "envd/event.h"
#include "envd/http/exchange.h"

namespace envd::testing {

class FakeExchange final : public http::Exchange {
 public:
  FakeExchange(boost::asio::io_context& io, http::RequestHead head, std::deque<std::string> body_pieces = {})
      : io_(io), head_(std::move(head)), pieces_(std::move(body_pieces)) {
    auto q = head_.target.find('?');
    head_.path = head_.target.substr(0, q);
    if (q != std::string::npos) head_.query = head_.target.substr(q + 1);
  }

  const http::RequestHead& request() const override { return head_; }
  boost::asio::any_io_executor executor() const override { return io_.get_executor(); }

  boost::asio::awaitable<http::BodyRead> read_body(std::string& out, std::size_t max_bytes) override {
    if (pieces_.empty()) co_return http::BodyRead::end;
    auto& p = pieces_.front();
    std::size_t n = std::min(max_bytes, p.size());
    out.append(p, 0, n);
    p.erase(0, n);
    if (p.empty()) pieces_.pop_front();
    co_return http::BodyRead::data;
  }
  boost::asio::awaitable<bool> write_head(http::ResponseHead head) override {
    head_sent_ = true;
    response_status_ = head.status;
    status = head.status;
    headers = std::move(head.headers);
    for (auto& h : extra_headers_) headers.push_back(h);
    co_return true;
  }
  boost::asio::awaitable<bool> write_body(std::string data) override {
    body += data;
    co_return !closed_;
  }
  boost::asio::awaitable<void> finish(http::Headers t) override {
    finished = true;
    trailers = std::move(t);
    co_return;
  }
  bool closed() const override { return closed_; }
  void abort_response() override {
    aborted = true;
    close();
  }
  void close() {
    closed_ = true;
    notify_closed();
  }

  std::optional<std::string_view> header(std::string_view name) const { return http::find_header(headers, name); }

  int status = 0;
  http::Headers headers;
  std::string body;
  http::Headers trailers;
  bool finished = false;
  bool aborted = false;

 private:
  boost::asio::io_context& io_;
  http::RequestHead head_;
  std::deque<std::string> pieces_;
  bool closed_ = false;
};

}  // namespace envd::testing
