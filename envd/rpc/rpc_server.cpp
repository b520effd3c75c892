#include "envd/rpc/rpc_server.h"

#include "envd/base64.h"
#include "envd/blocking.h"

#include <google/protobuf/message.h>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <memory>
#include <nlohmann/json.hpp>

#include "envd/event.h"
#include "envd/log.h"
#include "envd/rest/query.h"
#include "envd/rpc/envelope.h"
#include "envd/rpc/keepalive.h"
#include "envd/rpc/timeout.h"

namespace envd::rpc {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True if a comma-separated coding list (Accept-Encoding style) names gzip with q > 0.
bool accepts_gzip(std::optional<std::string_view> header) {
  if (!header) return false;
  std::string lower = http::to_lower(*header);
  std::string_view rest = lower;
  while (!rest.empty()) {
    auto comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    auto semi = item.find(';');
    std::string_view coding = trim(item.substr(0, semi));
    if (coding != "gzip") continue;
    if (semi != std::string_view::npos) {
      std::string_view params = trim(item.substr(semi + 1));
      if (params == "q=0" || params == "q=0.0" || params == "q=0.00" || params == "q=0.000") return false;
    }
    return true;
  }
  return false;
}

}  // namespace

std::optional<WireFormat> detect_wire_format(std::string_view content_type) {
  std::string ct = http::to_lower(content_type);
  std::string_view media = trim(std::string_view(ct).substr(0, ct.find(';')));
  std::string params = ct.find(';') == std::string::npos ? "" : ct.substr(ct.find(';') + 1);
  auto is_utf8_or_absent = [&] {
    std::string_view p = trim(params);
    return p.empty() || p == "charset=utf-8" || p == "charset=\"utf-8\"";
  };
  auto make = [&](Protocol p, Codec c) { return WireFormat{p, c, std::string(media)}; };
  if (media == "application/proto") return make(Protocol::connect_unary, Codec::proto);
  if (media == "application/json" && is_utf8_or_absent()) return make(Protocol::connect_unary, Codec::json);
  if (media == "application/connect+proto") return make(Protocol::connect_stream, Codec::proto);
  if (media == "application/connect+json" && is_utf8_or_absent()) return make(Protocol::connect_stream, Codec::json);
  if (media == "application/grpc" || media == "application/grpc+proto") return make(Protocol::grpc, Codec::proto);
  if (media == "application/grpc+json") return make(Protocol::grpc, Codec::json);
  if (media == "application/grpc-web" || media == "application/grpc-web+proto") {
    return make(Protocol::grpc_web, Codec::proto);
  }
  if (media == "application/grpc-web+json") return make(Protocol::grpc_web, Codec::json);
  if (media == "application/grpc-web-text" || media == "application/grpc-web-text+proto") {
    WireFormat w = make(Protocol::grpc_web, Codec::proto);
    w.base64 = true;
    return w;
  }
  return std::nullopt;
}

namespace {

// One RPC in flight: it is the handler's CallContext, its source of requests and its sink.
class RpcCall final : public CallContext, public MessageSource, public MessageSink {
 public:
  RpcCall(http::Exchange& ex, WireFormat wire, const RpcConfig& cfg)
      : ex_(ex), wire_(std::move(wire)), cfg_(cfg), reader_(cfg.max_request_message_bytes) {}

  // --- CallContext
  std::optional<std::string_view> header(std::string_view lower_name) const override {
    return ex_.request().header(lower_name);
  }
  const Metadata& request_metadata() const override { return ex_.request().headers; }
  std::string_view request_query() const override { return get_message_ ? ex_.request().query : std::string_view{}; }
  asio::any_io_executor executor() const override { return ex_.executor(); }
  asio::awaitable<bool> send_headers() override {
    if (wire_.protocol == Protocol::connect_unary) co_return !ex_.closed();
    co_return co_await ensure_head();
  }

  // A Connect GET call: the request message comes from the query string, not the body, and its
  // compression from the `compression` parameter.
  void set_get_request(std::string message, std::string compression) {
    get_message_ = std::move(message);
    get_compression_ = std::move(compression);
  }

  // --- setup: timeouts and compression. Returns a non-ok status to refuse the call.
  Status prepare() {
    const auto& req = ex_.request();
    if (wire_.protocol == Protocol::connect_unary || wire_.protocol == Protocol::connect_stream) {
      if (auto t = req.header("connect-timeout-ms")) {
        auto ms = parse_connect_timeout(*t);
        if (!ms)
          return error(Code::invalid_argument, "protocol error: invalid connect timeout \"" + std::string(*t) + "\"");
        timeout = *ms;
      }
    } else if (auto t = req.header("grpc-timeout")) {
      auto ns = parse_grpc_timeout(*t);
      if (!ns) return error(Code::invalid_argument, "protocol error: invalid grpc timeout \"" + std::string(*t) + "\"");
      timeout = *ns;
    }
    if (timeout) deadline = std::chrono::steady_clock::now() + *timeout;
    // Parsed once here for every streaming method (process streams, watch streams).
    keepalive_interval = parse_keepalive_interval(req.header("keepalive-ping-interval"));

    std::string_view enc_header, accept_header;
    std::optional<std::string_view> get_compression;
    if (get_message_ && !get_compression_.empty()) get_compression = get_compression_;
    switch (wire_.protocol) {
      case Protocol::connect_unary:
        enc_header = "content-encoding";
        accept_header = "accept-encoding";
        break;
      case Protocol::connect_stream:
        enc_header = "connect-content-encoding";
        accept_header = "connect-accept-encoding";
        break;
      case Protocol::grpc:
      case Protocol::grpc_web:
        enc_header = "grpc-encoding";
        accept_header = "grpc-accept-encoding";
        break;
    }
    if (auto enc = get_message_ ? get_compression : req.header(enc_header)) {
      std::string e = http::to_lower(trim(*enc));
      if (e == "gzip") {
        request_gzip_ = true;
      } else if (!e.empty() && e != "identity") {
        return error(Code::unimplemented,
                     "unknown compression \"" + std::string(*enc) + "\": supported encodings are gzip");
      }
    }
    response_gzip_ = accepts_gzip(req.header(accept_header));
    return {};
  }

  // --- MessageSource
  const Status& status() const override { return source_status_; }

  asio::awaitable<ReadResult> read(google::protobuf::Message& out) override {
    if (!source_status_.ok()) co_return ReadResult::error;
    if (wire_.protocol == Protocol::connect_unary) co_return co_await read_unary(out);
    if (stream_ended_) co_return ReadResult::end;
    for (;;) {
      Envelope env;
      switch (reader_.next(env)) {
        case EnvelopeReader::Result::envelope: {
          if (wire_.protocol == Protocol::connect_stream && (env.flags & kFlagConnectEndStream)) {
            // The client's end-of-stream frame: the request stream ends here (connect-go reads it
            // as EOF), whatever it carries.
            stream_ended_ = true;
            co_return ReadResult::end;
          }
          const std::uint8_t allowed =
              kFlagCompressed | (wire_.protocol == Protocol::connect_stream ? kFlagConnectEndStream : 0);
          if (env.flags & ~allowed) {
            co_return fail(
                error(Code::internal, "protocol error: invalid envelope flags " + std::to_string(env.flags)));
          }
          std::string inflated;
          std::string_view payload = env.payload;
          if (env.flags & kFlagCompressed) {
            if (!request_gzip_) {
              co_return fail(error(Code::internal, "protocol error: received compressed message without compression"));
            }
            Status st = gzip_decompress(env.payload, cfg_.max_request_message_bytes, inflated);
            if (!st.ok()) co_return fail(std::move(st));
            payload = inflated;
          }
          Status st = decode_message(wire_.codec, payload, out);
          if (!st.ok()) co_return fail(std::move(st));
          co_return ReadResult::message;
        }
        case EnvelopeReader::Result::too_large: co_return fail(too_large(reader_.announced_length()));
        case EnvelopeReader::Result::need_more: break;
      }
      if (body_ended_) {
        if (reader_.pending() > 0 && reader_.pending() < 5) {
          co_return fail(error(Code::invalid_argument, "protocol error: incomplete envelope: unexpected EOF"));
        }
        if (reader_.pending() > 0) {
          co_return fail(error(Code::invalid_argument,
                               "protocol error: promised " + std::to_string(reader_.announced_length()) +
                                   " bytes in enveloped message, got " +
                                   std::to_string(reader_.pending() >= 5 ? reader_.pending() - 5 : 0) + " bytes"));
        }
        co_return ReadResult::end;
      }
      std::string chunk;
      auto r = co_await ex_.read_body(chunk, 256 * 1024);
      if (r == http::BodyRead::data) {
        if (!wire_.base64) {
          reader_.feed(chunk);
        } else {
          std::string decoded;
          if (!text_.feed(chunk, decoded))
            co_return fail(error(Code::invalid_argument, "invalid base64 in request body"));
          reader_.feed(decoded);
        }
      } else if (r == http::BodyRead::end) {
        body_ended_ = true;
        if (wire_.base64 && !text_.complete()) {
          co_return fail(error(Code::invalid_argument, "invalid base64 in request body: truncated group"));
        }
      } else {
        co_return fail(error(Code::canceled, "client disconnected while sending the request"));
      }
    }
  }

  // --- MessageSink
  asio::awaitable<bool> send(const google::protobuf::Message& msg) override {
    if (wire_.protocol == Protocol::connect_unary) {
      // Compressed in finish(), with the Content-Encoding header.
      unary_response_ = co_await encode(msg, false);
      co_return true;
    }
    if (!co_await ensure_head()) co_return false;
    std::string frame;
    if (response_gzip_) {
      std::string payload = co_await encode(msg, true);
      frame = encode_envelope(kFlagCompressed, payload);
    } else {
      frame = co_await encode_frame(msg);
    }
    co_return co_await write_frame(std::move(frame));
  }

  // --- completion
  asio::awaitable<void> finish(const Status& st) {
    if (ex_.closed()) co_return;
    switch (wire_.protocol) {
      case Protocol::connect_unary: {
        // Connect unary carries trailers as `trailer-` prefixed headers.
        auto with_metadata = [this](http::Headers h) {
          h.insert(h.end(), response_headers.begin(), response_headers.end());
          for (const auto& [n, v] : response_trailers) h.emplace_back("trailer-" + n, v);
          return h;
        };
        if (!st.ok()) {
          http::Headers h = with_metadata({{"content-type", "application/json"}});
          co_await ex_.respond(http_status_for(st.code), std::move(h), connect_error_json(st));
          co_return;
        }
        http::Headers h = with_metadata({{"content-type", wire_.content_type}});
        std::string body = std::move(unary_response_);
        if (response_gzip_) {
          body = co_await compress(std::move(body));
          h.emplace_back("content-encoding", "gzip");
        }
        co_await ex_.respond(200, std::move(h), std::move(body));
        co_return;
      }
      case Protocol::connect_stream: {
        co_await end_with(encode_envelope(kFlagConnectEndStream, connect_end_stream(st)));
        co_return;
      }
      case Protocol::grpc:
      case Protocol::grpc_web: {
        http::Headers trailers = grpc_trailers(st);
        if (!ex_.head_sent() && !st.ok() && response_headers.empty()) {
          // Trailers-only (gRPC's "Trailers-Only" response): an error before any message is one
          // head with the status in it and no body; on HTTP/2 the HEADERS frame ends the stream.
          // Not when the handler set headers: a client would take them for trailers.
          http::ResponseHead head = response_head();
          head.headers.insert(head.headers.end(), trailers.begin(), trailers.end());
          head.content_length = 0;
          head.headers_only = true;
          if (co_await ex_.write_head(std::move(head))) co_await ex_.finish();
          co_return;
        }
        if (wire_.protocol == Protocol::grpc) {
          if (co_await ensure_head()) co_await ex_.finish(std::move(trailers));
          co_return;
        }
        std::string t;
        for (const auto& [n, v] : trailers) t += n + ": " + v + "\r\n";
        co_await end_with(encode_envelope(kFlagGrpcWebTrailers, t));
        co_return;
      }
    }
  }

 private:
  // The Connect end-of-stream message: the error if any, and the trailers as `metadata`.
  std::string connect_end_stream(const Status& st) const {
    std::string end = "{";
    if (!st.ok()) end += "\"error\":" + connect_error_json(st);
    if (!response_trailers.empty()) {
      nlohmann::json md = nlohmann::json::object();
      for (const auto& [n, v] : response_trailers) md[n].push_back(v);
      if (!st.ok()) end += ",";
      end += "\"metadata\":" + md.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    }
    return end + "}";
  }

  // gRPC / gRPC-Web trailers: status, message, details, then the handler's trailers.
  http::Headers grpc_trailers(const Status& st) const {
    http::Headers t{{"grpc-status", std::to_string(static_cast<int>(st.code))}};
    if (!st.message.empty()) t.emplace_back("grpc-message", grpc_percent_encode(st.message));
    if (!st.details.empty()) t.emplace_back("grpc-status-details-bin", base64_encode(grpc_status_details(st), false));
    t.insert(t.end(), response_trailers.begin(), response_trailers.end());
    return t;
  }

  // Encodes (and maybe gzips) a response message: on the loop when small, on the blocking pool
  // when large (cfg_.off_loop_encode_bytes). The message is not touched by anyone else meanwhile:
  // the handler awaits send().
  asio::awaitable<std::string> encode(const google::protobuf::Message& msg, bool gzip) {
    if (msg.ByteSizeLong() < cfg_.off_loop_encode_bytes) {
      std::string out = encode_message(wire_.codec, msg);
      co_return gzip ? gzip_compress(out) : out;
    }
    auto job = [codec = wire_.codec, &msg, gzip] {
      std::string out = encode_message(codec, msg);
      return gzip ? gzip_compress(out) : out;
    };
    co_return co_await run_blocking(WorkClass::walk, job);
  }

  // An uncompressed message as a whole envelope: encoded straight after the 5 header bytes, so
  // the payload is never copied into a frame (on the loop or the blocking pool, as encode()).
  asio::awaitable<std::string> encode_frame(const google::protobuf::Message& msg) {
    auto job = [codec = wire_.codec, &msg] {
      std::string frame(5, '\0');
      encode_message_to(codec, msg, frame);
      set_envelope_header(frame, 0);
      return frame;
    };
    if (msg.ByteSizeLong() < cfg_.off_loop_encode_bytes) co_return job();
    co_return co_await run_blocking(WorkClass::walk, job);
  }

  asio::awaitable<std::string> compress(std::string body) {
    if (body.size() < cfg_.off_loop_encode_bytes) co_return gzip_compress(body);
    auto job = [&body] { return gzip_compress(body); };
    co_return co_await run_blocking(WorkClass::walk, job);
  }

  // One frame of a streamed body; gRPC-Web text sends each as its own padded base64 segment.
  asio::awaitable<bool> write_frame(std::string frame) {
    if (wire_.base64) frame = base64_encode(frame);
    co_return co_await ex_.write_body(std::move(frame));
  }

  Status too_large(std::uint64_t size) const {
    return error(Code::resource_exhausted, "message size " + std::to_string(size) + " is larger than configured max " +
                                               std::to_string(cfg_.max_request_message_bytes));
  }

  ReadResult fail(Status st) {
    source_status_ = std::move(st);
    return ReadResult::error;
  }

  asio::awaitable<ReadResult> read_unary(google::protobuf::Message& out) {
    if (unary_read_) co_return ReadResult::end;
    unary_read_ = true;
    std::string body;
    if (get_message_) {
      body = std::move(*get_message_);
      get_message_ = std::string();  // still a GET call (request_query)
      if (body.size() > cfg_.max_request_message_bytes) co_return fail(too_large(body.size()));
    } else {
      auto r = co_await http::read_whole_body(ex_, body, cfg_.max_request_message_bytes);
      if (r == http::BodyRead::too_large) co_return fail(too_large(body.size()));
      if (r != http::BodyRead::end)
        co_return fail(error(Code::canceled, "client disconnected while sending the request"));
    }
    if (request_gzip_) {
      std::string inflated;
      Status st = gzip_decompress(body, cfg_.max_request_message_bytes, inflated);
      if (!st.ok()) co_return fail(std::move(st));
      body = std::move(inflated);
    }
    Status st = decode_message(wire_.codec, body, out);
    if (!st.ok()) co_return fail(std::move(st));
    co_return ReadResult::message;
  }

  // The last frame of a stream, then the end. When no message went out yet, head and frame are
  // one response (one write on HTTP/1.1: a client whose deadline falls between two writes would
  // see a head and no end frame).
  asio::awaitable<void> end_with(std::string frame) {
    if (wire_.base64) frame = base64_encode(frame);
    if (!ex_.head_sent()) {
      // A named local, not a temporary inside the co_await (g++ 12 miscompiles that: SIGILL).
      http::Headers headers = std::move(response_head().headers);
      co_await ex_.respond(200, std::move(headers), std::move(frame));
      co_return;
    }
    if (!co_await ex_.write_body(std::move(frame))) co_return;
    co_await ex_.finish();
  }

  asio::awaitable<bool> ensure_head() {
    if (ex_.head_sent()) co_return !ex_.closed();
    co_return co_await ex_.write_head(response_head());
  }

  http::ResponseHead response_head() const {
    http::ResponseHead head;
    head.status = 200;
    head.headers.emplace_back("content-type", wire_.content_type);
    if (wire_.protocol == Protocol::connect_stream) {
      if (response_gzip_) head.headers.emplace_back("connect-content-encoding", "gzip");
    } else {
      if (response_gzip_) head.headers.emplace_back("grpc-encoding", "gzip");
      head.headers.emplace_back("grpc-accept-encoding", "gzip");
    }
    head.headers.insert(head.headers.end(), response_headers.begin(), response_headers.end());
    return head;
  }

  http::Exchange& ex_;
  WireFormat wire_;
  const RpcConfig& cfg_;
  EnvelopeReader reader_;
  Base64Stream text_;  // gRPC-Web text request bodies
  bool body_ended_ = false;
  bool stream_ended_ = false;  // a Connect end-of-stream frame arrived
  bool unary_read_ = false;
  bool request_gzip_ = false;
  bool response_gzip_ = false;
  Status source_status_;
  std::string unary_response_;
  std::optional<std::string> get_message_;  // Connect GET: the decoded `message` parameter
  std::string get_compression_;             // Connect GET: the `compression` parameter
};

// The first value of `name` in a query decoded as Go's r.URL.Query() (connect-go's GET
// handling): a pair with a bad escape is dropped, so `message=%zz` is a missing message.
std::optional<std::string> query_param(const rest::Query& query, std::string_view name) {
  const auto& v = query.values(name);
  if (v.empty()) return std::nullopt;
  return v.front();
}

asio::awaitable<Status> run_handler(const Method& m, RpcCall& call) {
  try {
    co_return co_await m.handler(call, call, call);
  } catch (const boost::system::system_error& e) {
    if (e.code() == asio::error::operation_aborted) throw;  // cancelled: another branch won the race
    log::error("rpc", std::string(m.service) + "/" + m.name + " threw: " + e.what());
    co_return error(Code::internal, e.what());
  } catch (const std::exception& e) {
    log::error("rpc", std::string(m.service) + "/" + m.name + " threw: " + e.what());
    co_return error(Code::internal, e.what());
  }
}

Status handler_failure(const Method& m, const std::exception_ptr& failure) {
  std::string what = "unknown exception";
  try {
    std::rethrow_exception(failure);
  } catch (const std::exception& e) {
    what = e.what();
  } catch (...) {
  }
  log::error("rpc", m.service + "/" + m.name + " threw: " + what);
  return error(Code::internal, "internal error: " + what);
}

bool streaming_protocol_fits(Protocol p, MethodKind k) {
  if (p == Protocol::connect_unary) return k == MethodKind::unary;
  if (p == Protocol::connect_stream) return k != MethodKind::unary;
  return true;
}

}  // namespace

void RpcServer::shutdown(Status status) {
  shutdown_status_ = std::move(status);
  // cancel() only posts callbacks: the set does not change while it is walked.
  for (const auto& scope : active_) scope->cancel(CancelReason::shutdown);
}

bool RpcServer::owns(std::string_view path) const {
  bool service_known = false;
  registry_.find(path, &service_known);
  return service_known;
}

namespace {

// Answers a call with an error before its handler runs. Its own coroutine, so that the RpcCall it
// needs is not part of serve()'s frame, which lives as long as the call.
asio::awaitable<void> refuse_call(http::Exchange& ex, WireFormat wire, RpcConfig cfg, Status st) {
  RpcCall call(ex, std::move(wire), cfg);
  co_await call.finish(st);
}

// 405 for a method other than POST, 415 for a content type we do not speak.
asio::awaitable<void> refuse_transport(http::Exchange& ex, bool wrong_method) {
  if (wrong_method) {
    http::Headers h{{"allow", "POST"}, {"content-type", "text/plain; charset=utf-8"}};
    co_await ex.respond(405, std::move(h), std::string("Method Not Allowed\n"));
    co_return;
  }
  http::Headers h{{"accept-post",
                   "application/json, application/proto, application/connect+json, application/connect+proto, "
                   "application/grpc, application/grpc+proto, application/grpc+json, application/grpc-web, "
                   "application/grpc-web+proto, application/grpc-web+json, application/grpc-web-text, "
                   "application/grpc-web-text+proto"}};
  co_await ex.respond(415, std::move(h), {});
}

// A known service with an unknown method: `unimplemented`; over Connect unary a 404 with the
// Connect error that maps to it.
asio::awaitable<void> refuse_unknown_method(http::Exchange& ex, WireFormat wire, RpcConfig cfg) {
  Status st = error(Code::unimplemented, std::string(ex.request().path) + " is not a method of this service");
  if (wire.protocol == Protocol::connect_unary) {
    http::Headers h{{"content-type", "application/json"}};
    co_await ex.respond(404, std::move(h), connect_error_json(st));
    co_return;
  }
  co_await refuse_call(ex, std::move(wire), cfg, std::move(st));
}

}  // namespace

Status RpcServer::authenticate(http::Exchange& ex, const WireFormat& wire, User& user) const {
  RpcCall probe(ex, wire, config_);
  Status st = authenticator_(ex.request(), probe);
  if (st.ok()) user = std::move(probe.user);
  return st;
}

namespace {

// A Connect GET call (contract §1.3's Connect protocol; only for NO_SIDE_EFFECTS methods): the
// `encoding` query parameter names the codec the request message is in and the answer takes.
std::optional<WireFormat> connect_get_wire_format(const rest::Query& query) {
  auto encoding = query_param(query, "encoding");
  if (encoding == "proto") return WireFormat{Protocol::connect_unary, Codec::proto, "application/proto"};
  if (encoding == "json") return WireFormat{Protocol::connect_unary, Codec::json, "application/json"};
  return std::nullopt;
}

// The request message of a Connect GET call: `message`, URL-safe base64 (padded or not) when
// `base64=1`.
Status connect_get_message(const rest::Query& query, std::string& message) {
  auto m = query_param(query, "message");
  if (!m) return error(Code::invalid_argument, "protocol error: missing \"message\" query parameter");
  if (query_param(query, "base64") == "1") {
    std::string_view b64 = *m;
    while (!b64.empty() && b64.back() == '=') b64.remove_suffix(1);
    std::string urlsafe(b64);
    for (char& c : urlsafe) {
      if (c == '+') c = '-';
      if (c == '/') c = '_';
    }
    auto decoded = base64_decode(urlsafe, Base64::url_unpadded);
    if (!decoded) return error(Code::invalid_argument, "protocol error: invalid base64 in \"message\" query parameter");
    message = std::move(*decoded);
  } else {
    message = std::move(*m);
  }
  return {};
}

}  // namespace

asio::awaitable<void> RpcServer::serve(http::Exchange& ex) {
  const auto& req = ex.request();
  User user;
  const bool is_get = req.method == "GET";
  // A Connect GET's parameters (parsed once; empty for a POST).
  const rest::Query get_query = is_get ? rest::Query::parse(req.query) : rest::Query{};
  auto wire = is_get ? connect_get_wire_format(get_query) : detect_wire_format(req.header("content-type").value_or(""));
  if (authenticator_) {
    // Like envd's authn middleware, this runs before method and content-type checks; its error
    // takes the shape of the protocol the request speaks (plain JSON when that is unknown).
    WireFormat shape = wire.value_or(WireFormat{Protocol::connect_unary, Codec::json, "application/json"});
    Status st = authenticate(ex, shape, user);
    if (!st.ok()) {
      co_await refuse_call(ex, std::move(shape), config_, std::move(st));
      co_return;
    }
  }
  bool service_known = false;
  const Method* m = registry_.find(req.path, &service_known);
  if (is_get && m && m->no_side_effects && m->kind == MethodKind::unary) {
    if (!wire) {
      co_await refuse_transport(ex, false);
      co_return;
    }
  } else if (req.method != "POST" || !wire || (m && !streaming_protocol_fits(wire->protocol, m->kind))) {
    co_await refuse_transport(ex, req.method != "POST");
    co_return;
  }
  if (!m) {
    co_await refuse_unknown_method(ex, *wire, config_);
    co_return;
  }

  RpcCall call(ex, *wire, config_);
  call.user = std::move(user);

  Status st;
  if (is_get) {
    std::string message;
    st = connect_get_message(get_query, message);
    call.set_get_request(std::move(message), query_param(get_query, "compression").value_or(""));
  }
  if (st.ok()) st = call.prepare();
  if (st.ok() && shutdown_status_) st = *shutdown_status_;
  if (st.ok()) {
    // What can end the call early (client gone, deadline, shutdown) is the request's scope; here
    // it becomes one cancellation signal bound to the handler's coroutine (cheaper than racing the
    // handler against waiting coroutines: ~6 kB of frames per open stream).
    auto scope = ex.scope_ptr();
    call.cancel_token = scope->token();
    // The signal lives in this frame (no allocation per call); its callback, a single pointer, is
    // stored inline by std::function and forgotten before the signal goes away, however this
    // block is left.
    asio::cancellation_signal signal;
    struct Forget {
      RequestScope& scope;
      std::uint64_t id;
      ~Forget() { scope.forget(id); }
    } forget{*scope, scope->on_cancel([sig = &signal] { sig->emit(asio::cancellation_type::terminal); })};
    active_.insert(scope);
    asio::steady_timer timer(ex.executor());
    if (call.deadline) {
      timer.expires_at(*call.deadline);
      timer.async_wait([scope](const boost::system::error_code& ec) {
        if (!ec) scope->cancel(CancelReason::deadline);
      });
    }
    std::exception_ptr failure;
    auto token = asio::bind_cancellation_slot(signal.slot(), asio::use_awaitable);
    try {
      st = co_await asio::co_spawn(ex.executor(), run_handler(*m, call), token);
    } catch (...) {
      failure = std::current_exception();
    }
    const CancelReason reason = scope->reason();
    timer.cancel();
    active_.erase(scope);
    switch (reason) {
      case CancelReason::none:
        // Not a cancellation of ours, yet the handler threw (run_handler passes operation_aborted
        // through): the call still ends with a status in its protocol's shape, never as a bare
        // HTTP 500 from the transport.
        if (failure) st = handler_failure(*m, failure);
        break;
      case CancelReason::client_gone: st = error(Code::canceled, "client disconnected"); break;
      case CancelReason::deadline: st = error(Code::deadline_exceeded, "context deadline exceeded"); break;
      case CancelReason::shutdown: st = shutdown_status_.value_or(error(Code::unavailable, "call cancelled")); break;
    }
  }
  if (!st.ok() && st.code != Code::canceled) {
    log::write(log::Level::debug, "rpc",
               m->service + "/" + m->name + " failed: " + std::string(code_name(st.code)) + ": " + st.message,
               {{"request_id", ex.request_id()}});
  }
  co_await call.finish(st);
}

}  // namespace envd::rpc
