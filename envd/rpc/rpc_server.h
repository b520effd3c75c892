#pragma once
// The protocol adapter: serves a registered method over Connect (unary and streaming), gRPC and
// gRPC-Web, with JSON or binary protobuf, on any http::Exchange.
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>

#include "envd/http/event.h"
#include "envd/http/exchange.h"
#include "envd/request_scope.h"
#include "envd/rpc/codec.h"
#include "envd/rpc/service.h"

namespace envd::rpc {

struct RpcConfig {
  // Largest request message accepted (after decompression); larger → resource_exhausted.
  std::size_t max_request_message_bytes = 32u << 20;
  // Response messages at least this large (ByteSizeLong) are encoded (and gzipped) on the blocking
  // pool, so a 100,000-entry ListDir does not stall the loop for the encoding's duration.
  std::size_t off_loop_encode_bytes = 1u << 20;
};

enum class Protocol { connect_unary, connect_stream, grpc, grpc_web };

struct WireFormat {
  Protocol protocol;
  Codec codec;
  std::string content_type;  // media type to answer with
  bool base64 = false;       // gRPC-Web text: both bodies are base64
};

// Parses a request Content-Type into the protocol and codec it selects; nullopt → 415.
std::optional<WireFormat> detect_wire_format(std::string_view content_type);

// Decides who a call acts as (fills ctx.user) or refuses it (unauthenticated).
using Authenticator = std::function<Status(const http::RequestHead&, CallContext&)>;

class RpcServer {
 public:
  RpcServer(Registry& registry, RpcConfig config) : registry_(registry), config_(config) {}

  void set_authenticator(Authenticator auth) { authenticator_ = std::move(auth); }

  // True if the path names an RPC service we serve (known service, any method).
  bool owns(std::string_view path) const;
  asio::awaitable<void> serve(http::Exchange& ex);

  const RpcConfig& config() const { return config_; }

  // Graceful shutdown: every running call ends now with `status` (its handler is cancelled; the
  // client gets the status in the Connect end frame, gRPC trailers or the unary error), and calls
  // that arrive later are refused with it.
  void shutdown(Status status);
  bool shutting_down() const { return shutdown_status_.has_value(); }
  // Calls whose handler is running.
  std::size_t active_calls() const { return active_.size(); }

 private:
  // Runs the authenticator (its error takes the request's protocol shape); fills `user`.
  Status authenticate(http::Exchange& ex, const WireFormat& wire, User& user) const;

  Registry& registry_;
  RpcConfig config_;
  Authenticator authenticator_;
  std::set<std::shared_ptr<RequestScope>> active_;  // scopes of the calls whose handler is running
  std::optional<Status> shutdown_status_;
};

}  // namespace envd::rpc
