#pragma once
#include <chrono>
#include <cstddef>
#include <string>

#include "envd/rpc/service.h"
#include "envd/sandbox_state.h"

namespace envd::process {

struct ServiceConfig {
  // How long Connect still serves start + end of a process that ended (contract §4.3: 30 s).
  std::chrono::milliseconds retention{30'000};
  // A subscriber whose queue stays full this long while another one waits is dropped.
  std::chrono::milliseconds subscriber_stall{10'000};
  std::size_t subscriber_queue_bytes = 256 * 1024;
  std::size_t stdin_queue_bytes = 4u << 20;
  bool cgroups = true;
  std::string cgroup_root = "/sys/fs/cgroup";
};

// Registers process.Process (contract §4). `state` (default user/workdir, global env) must
// outlive the registry.
void register_service(rpc::Registry& registry, SandboxState& state, const ServiceConfig& config);

}  // namespace envd::process
