#include "envd/route_table.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/message.h>

#include <nlohmann/json.hpp>

#include "envd/access.h"

namespace envd {

namespace {
const char* kind_name(rpc::MethodKind k) {
  switch (k) {
    case rpc::MethodKind::unary: return "unary";
    case rpc::MethodKind::server_stream: return "server_stream";
    case rpc::MethodKind::client_stream: return "client_stream";
    case rpc::MethodKind::bidi_stream: return "bidi_stream";
  }
  return "unknown";
}

std::string type_name(const google::protobuf::Message* prototype) {
  return prototype ? std::string(prototype->GetDescriptor()->full_name()) : std::string();
}
}  // namespace

std::string route_table_json(const Router& router, const rpc::Registry& registry) {
  nlohmann::json routes = nlohmann::json::array();
  for (const auto& r : router.routes()) {
    routes.push_back({{"method", r.method},
                      {"path", r.path},
                      {"token_exempt", token_exempt(r.method, r.path)},
                      {"run_to_completion", r.run_to_completion}});
  }
  nlohmann::json methods = nlohmann::json::array();
  for (const auto& [path, m] : registry.methods()) {
    methods.push_back({{"path", path},
                       {"service", m.service},
                       {"method", m.name},
                       {"kind", kind_name(m.kind)},
                       {"request", type_name(m.request_prototype)},
                       {"response", type_name(m.response_prototype)}});
  }
  return nlohmann::json{{"routes", std::move(routes)}, {"rpc", std::move(methods)}}.dump();
}

}  // namespace envd
