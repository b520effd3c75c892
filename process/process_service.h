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
  // --- output retention (issue 13 part 1) ---
  std::size_t output_retention_max_bytes = 16u << 20;    // per process: StartRequest's size is capped here
  std::size_t output_retention_total_bytes = 64u << 20;  // all rings together; beyond: resource_exhausted
  std::chrono::milliseconds output_retention{30'000};    // an ended process's ring is kept this long
  std::size_t output_retention_max_ended = 16;           // ended processes whose ring is kept
  // --- end output retention ---
};

// Registers process.Process (contract §4). `state` (default user/workdir, global env) must
// outlive the registry.
void register_service(rpc::Registry& registry, SandboxState& state, const ServiceConfig& config);

}  // namespace envd::process
