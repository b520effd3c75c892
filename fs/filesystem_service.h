#pragma once
#include "envd/rpc/service.h"

namespace envd::fs {
// Registers filesystem.Filesystem. Methods without an implementation answer `unimplemented`.
void register_service(rpc::Registry& registry);
}  // namespace envd::fs
