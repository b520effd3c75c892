#pragma once
// connectrpc.conformance.v1.ConformanceService on envd's RPC layer: the service the Connect
// conformance suite's reference clients call (tests/conformance/README.md). Test-only code.
#include "envd/rpc/service.h"

namespace envd::conformance {

void register_conformance_service(rpc::Registry& registry);

}  // namespace envd::conformance
