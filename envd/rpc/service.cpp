#include "envd/rpc/service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/message.h>
#include <memory>
#include <stdexcept>

namespace envd::rpc {

asio::awaitable<Status> read_single_request(MessageSource& src, google::protobuf::Message& req) {
  if (auto r = co_await src.read(req); r != ReadResult::message) co_return missing_request(r, src);
  std::unique_ptr<google::protobuf::Message> extra(req.New());
  switch (co_await src.read(*extra)) {
    case ReadResult::end: co_return Status{};
    case ReadResult::message: co_return error(Code::unimplemented, "unary request has multiple messages");
    case ReadResult::error: co_return src.status();
  }
  co_return Status{};
}

void Registry::add_service(const google::protobuf::ServiceDescriptor* service) {
  auto* factory = google::protobuf::MessageFactory::generated_factory();
  services_[service->full_name()] = true;
  for (int i = 0; i < service->method_count(); ++i) {
    const auto* m = service->method(i);
    Method method;
    method.service = service->full_name();
    method.name = m->name();
    method.kind = m->client_streaming() ? (m->server_streaming() ? MethodKind::bidi_stream : MethodKind::client_stream)
                                        : (m->server_streaming() ? MethodKind::server_stream : MethodKind::unary);
    method.no_side_effects = m->options().idempotency_level() == google::protobuf::MethodOptions::NO_SIDE_EFFECTS;
    method.request_prototype = factory->GetPrototype(m->input_type());
    method.response_prototype = factory->GetPrototype(m->output_type());
    std::string full = m->full_name();
    method.handler = [full](CallContext&, MessageSource&, MessageSink&) -> asio::awaitable<Status> {
      co_return error(Code::unimplemented, full + " is not implemented");
    };
    methods_["/" + method.service + "/" + method.name] = std::move(method);
  }
}

void Registry::add_service(std::string full_name, const google::protobuf::ServiceDescriptor* (*lookup)()) {
  services_[full_name] = true;
  lazy_[std::move(full_name)].lookup = lookup;
}

void Registry::resolve(std::map<std::string, LazyService, std::less<>>::iterator it) {
  std::string service = it->first;
  LazyService lazy = std::move(it->second);
  lazy_.erase(it);
  add_service(lazy.lookup());
  for (auto& [method, handler] : lazy.handlers) set_handler(service, method, std::move(handler));
}

void Registry::resolve_all() {
  while (!lazy_.empty()) resolve(lazy_.begin());
}

void Registry::set_handler(std::string_view service, std::string_view method, GenericHandler handler) {
  if (auto lazy = lazy_.find(service); lazy != lazy_.end()) {
    lazy->second.handlers.emplace_back(std::string(method), std::move(handler));
    return;
  }
  std::string key = "/" + std::string(service) + "/" + std::string(method);
  auto it = methods_.find(key);
  if (it == methods_.end()) throw std::logic_error("registering unknown RPC method " + key);
  it->second.handler = std::move(handler);
}

const Method* Registry::find(std::string_view path, bool* service_known) {
  std::string_view service;
  if (path.size() > 1 && path[0] == '/') {
    if (auto slash = path.find('/', 1); slash != std::string_view::npos) service = path.substr(1, slash - 1);
  }
  if (service_known) *service_known = !service.empty() && services_.count(service) > 0;
  if (!service.empty() && !lazy_.empty()) {
    if (auto lazy = lazy_.find(service); lazy != lazy_.end()) resolve(lazy);
  }
  auto it = methods_.find(path);
  return it == methods_.end() ? nullptr : &it->second;
}

}  // namespace envd::rpc
