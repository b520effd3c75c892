// What each method does is the suite's contract (docs/testing_servers.md of connectrpc.com/
// conformance): echo the request (headers, timeout, messages, GET query) in the response payload
// or, when the call ends in an error, as an error detail; answer with the data, headers, trailers,
// delay and error the request's response definition asks for.
#include "tests/conformance/conformance_service.h"

#include <google/protobuf/any.pb.h>

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <chrono>
#include <string>
#include <vector>

#include "connectrpc/conformance/v1/service.pb.h"
#include "envd/http/exchange.h"
#include "envd/rest/query.h"

namespace envd::conformance {

namespace {

namespace asio = boost::asio;
namespace v1 = connectrpc::conformance::v1;
using Anys = std::vector<google::protobuf::Any>;

google::protobuf::Any as_any(const google::protobuf::Message& m) {
  google::protobuf::Any a;
  a.PackFrom(m);
  return a;
}

// Adds the metadata in `hs` (name, values) to `out`, names lowercased.
void add_metadata(const google::protobuf::RepeatedPtrField<v1::Header>& hs, rpc::Metadata& out) {
  for (const auto& h : hs) {
    for (const auto& v : h.value()) out.emplace_back(http::to_lower(h.name()), v);
  }
}

// Groups metadata by name, in order of first appearance.
void to_headers(const rpc::Metadata& md, google::protobuf::RepeatedPtrField<v1::Header>& out) {
  for (const auto& [name, value] : md) {
    v1::Header* h = nullptr;
    for (auto& existing : out) {
      if (existing.name() == name) h = &existing;
    }
    if (!h) {
      h = out.Add();
      h->set_name(name);
    }
    h->add_value(value);
  }
}

v1::ConformancePayload::RequestInfo request_info(const rpc::CallContext& ctx, const Anys& requests) {
  v1::ConformancePayload::RequestInfo info;
  to_headers(ctx.request_metadata(), *info.mutable_request_headers());
  if (ctx.timeout) {
    info.set_timeout_ms(std::chrono::duration_cast<std::chrono::milliseconds>(*ctx.timeout).count());
  }
  for (const auto& r : requests) *info.add_requests() = r;
  std::string_view query = ctx.request_query();
  if (!query.empty()) {
    // Decoded as Go's url.ParseQuery (envd/rest/query.h), as connect-go reads a GET's query.
    auto& out = *info.mutable_connect_get_info()->mutable_query_params();
    const auto parsed = envd::rest::Query::parse(query);
    for (const auto& [name, values] : parsed.all()) {
      v1::Header* h = out.Add();
      h->set_name(name);
      for (const auto& v : values) h->add_value(v);
    }
  }
  return info;
}

// The error a response definition asks for, with the request info appended to its details.
rpc::Status to_status(const v1::Error& e, const v1::ConformancePayload::RequestInfo* info) {
  rpc::Status st;
  st.code = static_cast<rpc::Code>(e.code());
  st.message = e.message();
  for (const auto& d : e.details()) {
    std::string_view type = d.type_url();
    if (auto slash = type.rfind('/'); slash != std::string_view::npos) type.remove_prefix(slash + 1);
    st.details.push_back({std::string(type), d.value()});
  }
  if (info) st.details.push_back({info->GetTypeName(), info->SerializeAsString()});
  return st;
}

asio::awaitable<void> sleep_ms(rpc::CallContext& ctx, std::uint32_t ms) {
  if (ms == 0) co_return;
  asio::steady_timer t(ctx.executor(), std::chrono::milliseconds(ms));
  co_await t.async_wait(asio::use_awaitable);
}

// Unary, IdempotentUnary and ClientStream: one response built from a UnaryResponseDefinition.
asio::awaitable<rpc::Status> answer_unary(rpc::CallContext& ctx, const v1::UnaryResponseDefinition* def,
                                          const Anys& requests, v1::ConformancePayload& payload) {
  auto info = request_info(ctx, requests);
  if (!def) {
    *payload.mutable_request_info() = std::move(info);
    co_return rpc::Status{};
  }
  add_metadata(def->response_headers(), ctx.response_headers);
  add_metadata(def->response_trailers(), ctx.response_trailers);
  if (def->has_error()) co_return to_status(def->error(), &info);
  *payload.mutable_request_info() = std::move(info);
  payload.set_data(def->response_data());
  co_await sleep_ms(ctx, def->response_delay_ms());
  co_return rpc::Status{};
}

asio::awaitable<rpc::Status> unary(rpc::CallContext& ctx, const v1::UnaryRequest& req, v1::UnaryResponse& resp) {
  Anys reqs{as_any(req)};
  co_return co_await answer_unary(ctx, req.has_response_definition() ? &req.response_definition() : nullptr, reqs,
                                  *resp.mutable_payload());
}

asio::awaitable<rpc::Status> idempotent_unary(rpc::CallContext& ctx, const v1::IdempotentUnaryRequest& req,
                                              v1::IdempotentUnaryResponse& resp) {
  Anys reqs{as_any(req)};
  co_return co_await answer_unary(ctx, req.has_response_definition() ? &req.response_definition() : nullptr, reqs,
                                  *resp.mutable_payload());
}

asio::awaitable<rpc::Status> client_stream(rpc::CallContext& ctx, rpc::Reader<v1::ClientStreamRequest>& in,
                                           v1::ClientStreamResponse& resp) {
  Anys reqs;
  std::optional<v1::UnaryResponseDefinition> def;
  for (bool first = true;; first = false) {
    v1::ClientStreamRequest msg;
    auto r = co_await in.read(msg);
    if (r == rpc::ReadResult::end) break;
    if (r == rpc::ReadResult::error) co_return in.status();
    if (first && msg.has_response_definition()) def = msg.response_definition();
    reqs.push_back(as_any(msg));
  }
  co_return co_await answer_unary(ctx, def ? &*def : nullptr, reqs, *resp.mutable_payload());
}

asio::awaitable<rpc::Status> server_stream(rpc::CallContext& ctx, const v1::ServerStreamRequest& req,
                                           rpc::Writer<v1::ServerStreamResponse>& out) {
  if (!req.has_response_definition()) co_return rpc::Status{};
  const auto& def = req.response_definition();
  Anys reqs{as_any(req)};
  add_metadata(def.response_headers(), ctx.response_headers);
  add_metadata(def.response_trailers(), ctx.response_trailers);
  if (def.response_data_size() > 0 && !co_await ctx.send_headers()) co_return rpc::error(rpc::Code::canceled, "gone");
  int sent = 0;
  for (const auto& data : def.response_data()) {
    v1::ServerStreamResponse resp;
    resp.mutable_payload()->set_data(data);
    if (sent == 0) *resp.mutable_payload()->mutable_request_info() = request_info(ctx, reqs);
    co_await sleep_ms(ctx, def.response_delay_ms());
    if (!co_await out.send(resp)) co_return rpc::error(rpc::Code::canceled, "client gone");
    ++sent;
  }
  if (def.has_error()) {
    if (sent > 0) co_return to_status(def.error(), nullptr);
    auto info = request_info(ctx, reqs);
    co_return to_status(def.error(), &info);
  }
  co_return rpc::Status{};
}

asio::awaitable<rpc::Status> bidi_stream(rpc::CallContext& ctx, rpc::Reader<v1::BidiStreamRequest>& in,
                                         rpc::Writer<v1::BidiStreamResponse>& out) {
  std::optional<v1::StreamResponseDefinition> def;
  bool full_duplex = false;
  int sent = 0;
  Anys reqs;
  for (bool first = true;; first = false) {
    v1::BidiStreamRequest msg;
    auto r = co_await in.read(msg);
    if (r == rpc::ReadResult::end) break;
    if (r == rpc::ReadResult::error) co_return in.status();
    reqs.push_back(as_any(msg));
    if (first) {
      full_duplex = msg.full_duplex();
      if (msg.has_response_definition()) {
        def = msg.response_definition();
        add_metadata(def->response_headers(), ctx.response_headers);
        add_metadata(def->response_trailers(), ctx.response_trailers);
        if (full_duplex && def->response_data_size() > 0 && !co_await ctx.send_headers()) {
          co_return rpc::error(rpc::Code::canceled, "client gone");
        }
      }
    }
    if (!full_duplex) continue;
    // Full duplex: one response per request, each echoing the requests since the last one.
    if (!def || sent >= def->response_data_size()) break;
    v1::BidiStreamResponse resp;
    resp.mutable_payload()->set_data(def->response_data(sent));
    if (sent == 0) {
      *resp.mutable_payload()->mutable_request_info() = request_info(ctx, reqs);
    } else {
      for (const auto& a : reqs) *resp.mutable_payload()->mutable_request_info()->add_requests() = a;
    }
    co_await sleep_ms(ctx, def->response_delay_ms());
    if (!co_await out.send(resp)) co_return rpc::error(rpc::Code::canceled, "client gone");
    ++sent;
    reqs.clear();
  }
  if (!def) co_return rpc::Status{};
  if (!full_duplex && def->response_data_size() > 0 && !co_await ctx.send_headers()) {
    co_return rpc::error(rpc::Code::canceled, "client gone");
  }
  for (; sent < def->response_data_size(); ++sent) {
    v1::BidiStreamResponse resp;
    resp.mutable_payload()->set_data(def->response_data(sent));
    if (sent == 0) *resp.mutable_payload()->mutable_request_info() = request_info(ctx, reqs);
    co_await sleep_ms(ctx, def->response_delay_ms());
    if (!co_await out.send(resp)) co_return rpc::error(rpc::Code::canceled, "client gone");
  }
  if (def->has_error()) {
    if (sent > 0) co_return to_status(def->error(), nullptr);
    auto info = request_info(ctx, reqs);
    co_return to_status(def->error(), &info);
  }
  co_return rpc::Status{};
}

}  // namespace

void register_conformance_service(rpc::Registry& registry) {
  constexpr std::string_view kService = "connectrpc.conformance.v1.ConformanceService";
  registry.add_service(v1::UnaryRequest::descriptor()->file()->FindServiceByName("ConformanceService"));
  registry.unary<v1::UnaryRequest, v1::UnaryResponse>(kService, "Unary", unary);
  registry.unary<v1::IdempotentUnaryRequest, v1::IdempotentUnaryResponse>(kService, "IdempotentUnary",
                                                                          idempotent_unary);
  registry.client_stream<v1::ClientStreamRequest, v1::ClientStreamResponse>(kService, "ClientStream", client_stream);
  registry.server_stream<v1::ServerStreamRequest, v1::ServerStreamResponse>(kService, "ServerStream", server_stream);
  registry.bidi_stream<v1::BidiStreamRequest, v1::BidiStreamResponse>(kService, "BidiStream", bidi_stream);
  // Unimplemented stays as add_service registered it: the layer's own `unimplemented` answer.
}

}  // namespace envd::conformance
