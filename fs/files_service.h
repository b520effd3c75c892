#pragma once
// The /files REST routes (contract §6.5 GET download, §6.6 POST upload). Both share the request
// prelude in files_common.h.
#include <cstddef>

#include "envd/router.h"
#include "envd/sandbox_state.h"

namespace envd::fs {

struct FilesOptions {
  // Download: bytes read per step where the file cannot be handed to the socket whole (gzip,
  // and the sessions that copy into frames). Bounds the memory of one download.
  std::size_t download_chunk_bytes = 256 * 1024;
};

void register_files_routes(Router& router, SandboxState& state, FilesOptions options = {});

}  // namespace envd::fs
