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

// Live connections, for a graceful close at shutdown once no request is in flight: HTTP/2 sends
// GOAWAY and, once its last frames are out, FIN; an idle HTTP/1.1 connection sends FIN. Each
// then reads until the client closes its side. Exiting with a client's bytes unread (HTTP/2
// clients always send WINDOW_UPDATEs, PINGs, SETTINGS ACKs) makes the kernel reset the connection
// and drop the last responses still in its send buffer. Loop thread only.
// `settled` says when the connection holds nothing more for its client: it sent FIN and the
// client acknowledged every byte (send_queue_empty), even if the client keeps its side open.
std::uint64_t track_connection(std::function<void()> close_gracefully, std::function<bool()> settled);
void untrack_connection(std::uint64_t id);
// Asks every live connection (and every one tracked from now on) to close gracefully.
void close_connections_gracefully();
// Tracked connections not settled yet.
std::size_t unsettled_connections();
// True when the socket's send queue is empty: every byte written was acknowledged by the peer.
bool send_queue_empty(int fd);

}  // namespace envd::http
