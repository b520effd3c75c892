// grpc.reflection.v1 / v1alpha ServerReflection and grpc.health.v1 Health.
#include "envd/reflection_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <algorithm>

#include "envd/event.h"
#include "health.pb.h"
#include "reflection_v1.pb.h"
#include "reflection_v1alpha.pb.h"

namespace envd {

namespace {

namespace asio = boost::asio;
namespace gp = google::protobuf;
namespace v1 = grpc::reflection::v1;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

constexpr int kNotFound = 5;         // google.rpc.Code NOT_FOUND
constexpr int kInvalidArgument = 3;  // google.rpc.Code INVALID_ARGUMENT

void set_error(v1::ServerReflectionResponse& resp, int code, std::string message) {
  auto* err = resp.mutable_error_response();
  err->set_error_code(code);
  err->set_error_message(std::move(message));
}

// `file` first (always), then its transitive dependencies not yet sent on this stream.
void add_file(const gp::FileDescriptor* file, bool always, std::vector<std::string>& sent,
              v1::FileDescriptorResponse& out) {
  bool was_sent = std::find(sent.begin(), sent.end(), file->name()) != sent.end();
  if (was_sent && !always) return;
  if (!was_sent) sent.push_back(file->name());
  gp::FileDescriptorProto proto;
  file->CopyTo(&proto);
  out.add_file_descriptor_proto(proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) add_file(file->dependency(i), false, sent, out);
}

}  // namespace

std::string reflection_answer(const rpc::Registry& registry, const std::string& request_bytes,
                              std::vector<std::string>& sent) {
  v1::ServerReflectionRequest req;
  v1::ServerReflectionResponse resp;
  if (!req.ParseFromString(request_bytes)) {
    set_error(resp, kInvalidArgument, "cannot parse the reflection request");
    return resp.SerializeAsString();
  }
  *resp.mutable_original_request() = req;
  const gp::DescriptorPool* pool = gp::DescriptorPool::generated_pool();
  switch (req.message_request_case()) {
    case v1::ServerReflectionRequest::kListServices:
      for (const auto& name : registry.service_names())
        resp.mutable_list_services_response()->add_service()->set_name(name);
      break;
    case v1::ServerReflectionRequest::kFileByFilename:
      if (const auto* file = pool->FindFileByName(req.file_by_filename())) {
        add_file(file, true, sent, *resp.mutable_file_descriptor_response());
      } else {
        set_error(resp, kNotFound, "file not found: " + req.file_by_filename());
      }
      break;
    case v1::ServerReflectionRequest::kFileContainingSymbol:
      if (const auto* file = pool->FindFileContainingSymbol(req.file_containing_symbol())) {
        add_file(file, true, sent, *resp.mutable_file_descriptor_response());
      } else {
        set_error(resp, kNotFound, "symbol not found: " + req.file_containing_symbol());
      }
      break;
    case v1::ServerReflectionRequest::kFileContainingExtension: {
      const auto& ext = req.file_containing_extension();
      set_error(resp, kNotFound,
                "extension not found: " + ext.containing_type() + " " + std::to_string(ext.extension_number()));
      break;
    }
    case v1::ServerReflectionRequest::kAllExtensionNumbersOfType:
      if (const auto* type = pool->FindMessageTypeByName(req.all_extension_numbers_of_type())) {
        // envd's messages declare no extensions that a client could need.
        resp.mutable_all_extension_numbers_response()->set_base_type_name(type->full_name());
      } else {
        set_error(resp, kNotFound, "type not found: " + req.all_extension_numbers_of_type());
      }
      break;
    case v1::ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      set_error(resp, kInvalidArgument, "the reflection request names no question");
      break;
  }
  return resp.SerializeAsString();
}

namespace {

// One stream of questions and answers; v1alpha has the same wire messages as v1.
template <class Req, class Resp>
void register_reflection(rpc::Registry& registry, const char* service) {
  registry.bidi_stream<Req, Resp>(
      service, "ServerReflectionInfo",
      [&registry](rpc::CallContext&, rpc::Reader<Req>& in, rpc::Writer<Resp>& out) -> asio::awaitable<rpc::Status> {
        std::vector<std::string> sent;
        Req req;
        Resp resp;
        for (;;) {
          req.Clear();
          auto r = co_await in.read(req);
          if (r == rpc::ReadResult::end) co_return rpc::Status{};
          if (r == rpc::ReadResult::error) co_return in.status();
          resp.Clear();
          resp.ParseFromString(reflection_answer(registry, req.SerializeAsString(), sent));
          if (!co_await out.send(resp)) co_return rpc::error(rpc::Code::canceled, "client gone");
        }
      });
}

const gp::ServiceDescriptor* health_descriptor() {
  return HealthCheckRequest::descriptor()->file()->FindServiceByName("Health");
}

bool known_service(const rpc::Registry& registry, const std::string& name) {
  if (name.empty()) return true;
  auto names = registry.service_names();
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

void register_reflection_service(rpc::Registry& registry) {
  registry.add_service("grpc.reflection.v1.ServerReflection", [] {
    return v1::ServerReflectionRequest::descriptor()->file()->FindServiceByName("ServerReflection");
  });
  registry.add_service("grpc.reflection.v1alpha.ServerReflection", [] {
    return grpc::reflection::v1alpha::ServerReflectionRequest::descriptor()->file()->FindServiceByName(
        "ServerReflection");
  });
  register_reflection<v1::ServerReflectionRequest, v1::ServerReflectionResponse>(registry,
                                                                                 "grpc.reflection.v1.ServerReflection");
  register_reflection<grpc::reflection::v1alpha::ServerReflectionRequest,
                      grpc::reflection::v1alpha::ServerReflectionResponse>(registry,
                                                                           "grpc.reflection.v1alpha.ServerReflection");
}

void HealthState::set_not_serving() {
  serving_ = false;
  for (Event* ev : watchers_) ev->set();
}

void HealthState::remove_watcher(Event* ev) { std::erase(watchers_, ev); }

void register_health_service(rpc::Registry& registry, HealthState& health) {
  constexpr const char* kService = "grpc.health.v1.Health";
  registry.add_service(kService, health_descriptor);
  registry.unary<HealthCheckRequest, HealthCheckResponse>(
      kService, "Check",
      [&registry, &health](rpc::CallContext&, const HealthCheckRequest& req,
                           HealthCheckResponse& resp) -> asio::awaitable<rpc::Status> {
        if (!known_service(registry, req.service())) {
          co_return rpc::error(rpc::Code::not_found, "unknown service \"" + req.service() + "\"");
        }
        resp.set_status(health.serving() ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
        co_return rpc::Status{};
      });
  // The current status at once, then each change; at shutdown NOT_SERVING, then the stream ends.
  registry.server_stream<HealthCheckRequest, HealthCheckResponse>(
      kService, "Watch",
      [&registry, &health](rpc::CallContext& ctx, const HealthCheckRequest& req,
                           rpc::Writer<HealthCheckResponse>& out) -> asio::awaitable<rpc::Status> {
        HealthCheckResponse resp;
        if (!known_service(registry, req.service())) {
          // grpc's convention for Watch: SERVICE_UNKNOWN, and the stream stays (envd's set of
          // services never changes, so it only ends with the call).
          resp.set_status(HealthCheckResponse::SERVICE_UNKNOWN);
        }
        Event changed(ctx.executor());
        health.add_watcher(&changed);
        struct Unwatch {
          HealthState& h;
          Event* ev;
          ~Unwatch() { h.remove_watcher(ev); }
        } unwatch{health, &changed};
        bool unknown = resp.status() == HealthCheckResponse::SERVICE_UNKNOWN;
        for (;;) {
          if (!unknown) {
            resp.set_status(health.serving() ? HealthCheckResponse::SERVING : HealthCheckResponse::NOT_SERVING);
          }
          if (!co_await out.send(resp)) co_return rpc::error(rpc::Code::canceled, "client gone");
          if (!health.serving()) co_return rpc::Status{};
          changed.reset();
          co_await changed.wait();  // throws when the call is cancelled (client gone, deadline)
        }
      });
}

}  // namespace envd
