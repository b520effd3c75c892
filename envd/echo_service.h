#pragma once
#include "envd/rpc/service.h"

namespace envd {
// Registers envdtest.Echo (only with --test-services): a transport test service.
void register_echo_service(rpc::Registry& registry);
}  // namespace envd
