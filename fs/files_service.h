#pragma once
// The /files REST routes (contract §6.5 GET download, §6.6 POST upload). Both share the request
// prelude in files_common.h.
#include <cstddef>

#include "envd/router.h"
#include "envd/sandbox_state.h"
#include "fs/archive.h"

namespace envd::fs {

struct FilesOptions {
  // gzip download: file bytes read and compressed per step (--gzip-chunk-bytes). Bounds the
  // memory of one gzip download (about twice this).
  std::size_t gzip_chunk_bytes = 256 * 1024;
  ArchiveOptions archive{};  // GET of a directory as a tar (--archive-* flags)
};

void register_files_routes(Router& router, SandboxState& state, FilesOptions options = {});

}  // namespace envd::fs
