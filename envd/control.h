#pragma once
// The control endpoints (contract §6.1–6.4): GET /health, GET /envs, POST /init, GET /metrics
// (and GET /metrics?history=1, our addition). HTTP shaping only; the logic is in init.h and
// metrics.h.
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "envd/metrics.h"
#include "envd/router.h"
#include "envd/sandbox_state.h"

namespace envd {

struct ControlOptions {
  // /init may set CLOCK_REALTIME from its timestamp (--owns-clock, and never with -isnotfc).
  bool owns_clock = false;
  std::size_t max_init_body_bytes = 16u << 20;
  std::size_t max_init_depth = 32;  // JSON nesting allowed in an /init body (--max-init-depth)
  // Runs once the caller is authorised (contract §6.4 step 4: audit, then always thaw; stale
  // inits too). Returns the X-Envd-Freeze-Audit value when a freeze was in effect (envd/pause).
  std::function<std::optional<std::string>(std::string_view request_id)> on_authorized;
};

void register_control_routes(Router& router, SandboxState& state, MetricsSampler& metrics, ControlOptions options);

// The GET /envs body: the global environment as a JSON object, keys sorted, plus a newline.
std::string envs_json(const SandboxState& state);

// True if a raw query string asks for the sample history (`history=1` or `history=true`).
bool wants_history(std::string_view query);

}  // namespace envd
