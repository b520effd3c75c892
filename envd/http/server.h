#pragma once
// The listener: one TCP port, the first bytes sniffed to choose HTTP/2 (client preface) or
// HTTP/1.1 (everything else, including `Upgrade: h2c`, which hands the connection to HTTP/2).
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "envd/http/exchange.h"

namespace envd::http {

struct ServerConfig {
  std::size_t max_header_bytes = 1u << 20;  // as Go's MaxHeaderBytes
  std::chrono::milliseconds idle_timeout{640'000};
  std::chrono::milliseconds read_timeout{60'000};  // head in total; body: per progress window (see http1)
  std::size_t read_min_progress_bytes = 1024;
  std::size_t max_header_count = 256;
  std::size_t h2_max_header_list_bytes = 64u << 10;  // per request (name + value + 32 per field)
  std::size_t h2_header_budget_bytes = 4u << 20;     // per connection, over its open streams
  std::uint32_t h2_max_concurrent_streams = 250;
  std::uint32_t h2_stream_window = 1u << 20;       // per-stream receive window (uploads)
  std::uint32_t h2_connection_window = 16u << 20;  // connection receive window
  std::size_t write_high_watermark = 256u * 1024;  // h2: queued response bytes before a writer waits
  std::size_t upgrade_body_limit = 1u << 20;       // body of an `Upgrade: h2c` request, read before switching
};

using RequestHandler = std::function<asio::awaitable<void>(Exchange&)>;

struct ServerContext {
  ServerConfig config;
  RequestHandler handler;
};

// The h2c upgrade hands over the already-read request, which becomes HTTP/2 stream 1.
struct UpgradedRequest {
  RequestHead head;
  std::string body;
  std::string settings;  // decoded HTTP2-Settings payload
};

asio::awaitable<void> serve_http1(asio::ip::tcp::socket socket, std::string initial, ServerContext& ctx);
asio::awaitable<void> serve_http2(asio::ip::tcp::socket socket, std::string initial, ServerContext& ctx,
                                  std::optional<UpgradedRequest> upgraded);

// Runs until the acceptor is closed.
asio::awaitable<void> accept_loop(asio::ip::tcp::acceptor& acceptor, ServerContext& ctx);

}  // namespace envd::http
