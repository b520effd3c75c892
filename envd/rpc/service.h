#pragma once
// What a service sees of an RPC: a typed request (or a reader of requests), a typed writer of
// responses, and a CallContext with the call's metadata and deadline. No HTTP in here.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "envd/blocking.h"
#include "envd/rpc/status.h"
#include "envd/users.h"

namespace google::protobuf {
class Message;
class ServiceDescriptor;
}  // namespace google::protobuf

namespace envd::rpc {

namespace asio = boost::asio;

enum class MethodKind { unary, server_stream, client_stream, bidi_stream };

// Metadata as (lowercase name, value) pairs, in order; a name may repeat.
using Metadata = std::vector<std::pair<std::string, std::string>>;

class CallContext {
 public:
  virtual ~CallContext() = default;
  // Request metadata (HTTP headers / gRPC metadata), lowercase names.
  virtual std::optional<std::string_view> header(std::string_view lower_name) const = 0;
  // All of it, in the order received.
  virtual const Metadata& request_metadata() const = 0;
  // The raw query string of a Connect GET call (empty for POST).
  virtual std::string_view request_query() const = 0;
  virtual asio::any_io_executor executor() const = 0;

  // Response metadata the handler adds (lowercase names). Headers go out with the response head:
  // set them before the first send() or send_headers(). Trailers go out when the call ends (gRPC
  // trailers, gRPC-Web trailer frame, Connect end-stream `metadata`, Connect unary `trailer-*`
  // headers), for a success or an error alike.
  Metadata response_headers;
  Metadata response_trailers;
  // Streaming calls: sends the response head now, before any message, so the client sees the
  // headers at once. False once the client is gone. (Connect unary: nothing to do.)
  virtual asio::awaitable<bool> send_headers() = 0;

  // The client's timeout (Connect-Timeout-Ms / grpc-timeout), if any. The RPC layer enforces it
  // on the call; a service may also use it (process.Start bounds the process lifetime with it).
  std::optional<std::chrono::nanoseconds> timeout;
  std::optional<std::chrono::steady_clock::time_point> deadline;
  // The user the call acts as (Basic header or the default user), set before the handler runs.
  User user;
  // Set when the call is cancelled (client gone, deadline, shutdown): give it to pool jobs
  // (envd/blocking.h), which poll it between chunks of work.
  CancelToken cancel_token;
  // The client's `Keepalive-Ping-Interval` (contract §1.4), parsed and clamped once by the RPC
  // layer (envd/rpc/keepalive.h); streaming methods send keepalives at this interval.
  std::chrono::seconds keepalive_interval{90};
};

class MessageSink {
 public:
  virtual ~MessageSink() = default;
  // Sends one response message; suspends under back-pressure; false once the client is gone.
  virtual asio::awaitable<bool> send(const google::protobuf::Message& msg) = 0;
};

enum class ReadResult { message, end, error };

class MessageSource {
 public:
  virtual ~MessageSource() = default;
  // Reads the next request message into `out`. On error, `status()` says why.
  virtual asio::awaitable<ReadResult> read(google::protobuf::Message& out) = 0;
  virtual const Status& status() const = 0;
};

template <class Resp>
class Writer {
 public:
  explicit Writer(MessageSink& sink) : sink_(sink) {}
  asio::awaitable<bool> send(const Resp& msg) { return sink_.send(msg); }

 private:
  MessageSink& sink_;
};

template <class Req>
class Reader {
 public:
  explicit Reader(MessageSource& src) : src_(src) {}
  asio::awaitable<ReadResult> read(Req& out) { return src_.read(out); }
  const Status& status() const { return src_.status(); }

 private:
  MessageSource& src_;
};

// The status for a unary or server-streaming call whose single request message did not arrive
// (connect-go's wording and code).
inline Status missing_request(ReadResult r, const MessageSource& src) {
  return r == ReadResult::error ? src.status() : error(Code::unimplemented, "unary request has zero messages");
}

// Reads the one request message of a unary or server-streaming call, and the rest of the request
// up to its end: a second message or a broken frame after it refuses the call, as connect-go
// does, instead of being ignored.
// (Its own coroutine: the scratch message is not kept in the handler's frame.)
asio::awaitable<Status> read_single_request(MessageSource& src, google::protobuf::Message& req);

using GenericHandler = std::function<asio::awaitable<Status>(CallContext&, MessageSource&, MessageSink&)>;

struct Method {
  std::string service;  // "process.Process"
  std::string name;     // "Start"
  MethodKind kind = MethodKind::unary;
  // `option idempotency_level = NO_SIDE_EFFECTS`: Connect clients may call it with GET.
  bool no_side_effects = false;
  const google::protobuf::Message* request_prototype = nullptr;
  const google::protobuf::Message* response_prototype = nullptr;
  GenericHandler handler;
};

class Registry {
 public:
  // Registers every method of `service` answering `unimplemented`; real handlers replace them.
  void add_service(const google::protobuf::ServiceDescriptor* service);

  // The same for the service `full_name`, whose descriptor `lookup` returns when a request first
  // names the service (handlers set before then wait in a list). Building protobuf descriptors was
  // most of envd's start-up work (~2.4 M of ~4 M instructions) and faulted in descriptor code and
  // heap that a sandbox which only idles never needs (DESIGN §6: cold start, footprint).
  void add_service(std::string full_name, const google::protobuf::ServiceDescriptor* (*lookup)());

  // Looks up every lazily added service now (a handler naming no method of its service throws).
  void resolve_all();

  template <class Req, class Resp>
  void unary(std::string_view service, std::string_view method,
             std::function<asio::awaitable<Status>(CallContext&, const Req&, Resp&)> fn) {
    set_handler(
        service, method,
        [fn = std::move(fn)](CallContext& ctx, MessageSource& src, MessageSink& sink) -> asio::awaitable<Status> {
          Req req;
          if (Status st = co_await read_single_request(src, req); !st.ok()) co_return st;
          Resp resp;
          Status st = co_await fn(ctx, req, resp);
          if (st.ok()) co_await sink.send(resp);
          co_return st;
        });
  }

  template <class Req, class Resp>
  void server_stream(std::string_view service, std::string_view method,
                     std::function<asio::awaitable<Status>(CallContext&, const Req&, Writer<Resp>&)> fn) {
    set_handler(
        service, method,
        [fn = std::move(fn)](CallContext& ctx, MessageSource& src, MessageSink& sink) -> asio::awaitable<Status> {
          Req req;
          if (Status st = co_await read_single_request(src, req); !st.ok()) co_return st;
          Writer<Resp> w(sink);
          co_return co_await fn(ctx, req, w);
        });
  }

  template <class Req, class Resp>
  void client_stream(std::string_view service, std::string_view method,
                     std::function<asio::awaitable<Status>(CallContext&, Reader<Req>&, Resp&)> fn) {
    set_handler(
        service, method,
        [fn = std::move(fn)](CallContext& ctx, MessageSource& src, MessageSink& sink) -> asio::awaitable<Status> {
          Reader<Req> r(src);
          Resp resp;
          Status st = co_await fn(ctx, r, resp);
          if (st.ok()) co_await sink.send(resp);
          co_return st;
        });
  }

  // Reads and writes interleave as the handler likes: over HTTP/2 both directions are open at once
  // (full duplex); over HTTP/1.1 a client sends its whole request stream first (half duplex).
  template <class Req, class Resp>
  void bidi_stream(std::string_view service, std::string_view method,
                   std::function<asio::awaitable<Status>(CallContext&, Reader<Req>&, Writer<Resp>&)> fn) {
    set_handler(
        service, method,
        [fn = std::move(fn)](CallContext& ctx, MessageSource& src, MessageSink& sink) -> asio::awaitable<Status> {
          Reader<Req> r(src);
          Writer<Resp> w(sink);
          co_return co_await fn(ctx, r, w);
        });
  }

  // "/process.Process/Start" → method; nullptr if unknown. `service_known` tells a known service
  // with an unknown method apart from a path that is not an RPC at all.
  const Method* find(std::string_view path, bool* service_known = nullptr);

  // Every service served (full names, sorted), including those added by name and not looked up
  // yet (server reflection lists them).
  std::vector<std::string> service_names() const {
    std::vector<std::string> names;
    for (const auto& [name, known] : services_) names.push_back(name);
    return names;
  }

  // Every registered method by path ("/svc/method"), sorted (--print-routes).
  const std::map<std::string, Method, std::less<>>& methods() const { return methods_; }

 private:
  struct LazyService {
    const google::protobuf::ServiceDescriptor* (*lookup)() = nullptr;
    std::vector<std::pair<std::string, GenericHandler>> handlers;  // method name → handler
  };

  void set_handler(std::string_view service, std::string_view method, GenericHandler handler);
  void resolve(std::map<std::string, LazyService, std::less<>>::iterator it);

  std::map<std::string, Method, std::less<>> methods_;  // key: "/svc/method"
  std::map<std::string, bool, std::less<>> services_;
  std::map<std::string, LazyService, std::less<>> lazy_;  // added by name, not looked up yet
};

// A hand-written JSON encoder for a hot message type (services register theirs at start-up):
// appends to `out` exactly the text the generic converter would write for `msg` and returns true,
// or returns false with `out` untouched to leave `msg` to the converter. Registered by full type
// name (no descriptor is built for it); used by the codec for every JSON message of that type.
using JsonEncoder = bool (*)(const google::protobuf::Message& msg, std::string& out);
void register_json_encoder(std::string full_name, JsonEncoder encoder);

}  // namespace envd::rpc
