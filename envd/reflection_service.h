#pragma once
// gRPC server reflection (grpc.reflection.v1 and v1alpha) and health checking (grpc.health.v1), so
// standard tools (grpcurl, buf curl, health probes) work without .proto files. Both answer from
// the descriptors compiled into the binary; both sit behind the access token like every RPC.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "envd/rpc/service.h"

namespace envd {

class Event;

// The answer to one reflection request, as serialized grpc.reflection.v1.ServerReflectionResponse
// (v1alpha has the same messages and field numbers). `sent` holds the files already sent on this
// stream: dependencies are not sent twice (the requested file always is).
std::string reflection_answer(const rpc::Registry& registry, const std::string& request_bytes,
                              std::vector<std::string>& sent);

void register_reflection_service(rpc::Registry& registry);

// Serving status for grpc.health.v1.Health: SERVING until shutdown begins, NOT_SERVING after.
class HealthState {
 public:
  bool serving() const { return serving_; }
  // Shutdown begins: every Watch stream sends NOT_SERVING and ends.
  void set_not_serving();
  // Watch streams still open (shutdown waits, bounded, until they sent NOT_SERVING).
  std::size_t watchers() const { return watchers_.size(); }

  void add_watcher(Event* ev) { watchers_.push_back(ev); }
  void remove_watcher(Event* ev);

 private:
  bool serving_ = true;
  std::vector<Event*> watchers_;
};

void register_health_service(rpc::Registry& registry, HealthState& health);

}  // namespace envd
