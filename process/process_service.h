#pragma once
#include "envd/rpc/service.h"

namespace envd::process {
// Registers process.Process. Methods without an implementation answer `unimplemented`.
void register_service(rpc::Registry& registry);
}  // namespace envd::process
