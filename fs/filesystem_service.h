#pragma once
#include "envd/rpc/service.h"
#include "envd/sandbox_state.h"

namespace envd::fs {
// Registers filesystem.Filesystem: Stat, ListDir, MakeDir, Move, Remove (contract §5.1–5.6).
// The watch methods answer `unimplemented` until they are built.
void register_service(rpc::Registry& registry, SandboxState& state);
}  // namespace envd::fs
