#pragma once
// POST /files (contract §6.6) and POST /files/compose (§6.7).
//
// Upload: the shared /files prelude (signing, user), then Content-Encoding (gzip/identity),
// X-Metadata-* validation, the body kind by Content-Type (raw octet-stream or multipart), and for
// each file: EnsureDirs(parent), the writer of fs/file_writer.h (in place, or atomic with
// `?atomic=true` or a conditional header), body bytes written as they arrive (never buffered
// whole), metadata, and an entry of the JSON array answered. Every filesystem call runs on the
// blocking pool. A body that sends nothing for `idle_timeout` ends with 408; a client that goes
// away stops the upload (in place: a prefix of the new content stays; atomic: the old content).
#include <chrono>
#include <cstddef>

#include "envd/router.h"
#include "envd/sandbox_state.h"
#include "fs/archive.h"

namespace envd::fs {

struct UploadOptions {
  std::chrono::milliseconds idle_timeout{60'000};  // --upload-idle-timeout-ms
  std::size_t read_chunk_bytes = 1024 * 1024;      // asked of the transport per read (two buffers)
  std::size_t max_compose_body_bytes = 1u << 20;   // --max-compose-body-bytes (larger → 413)
  ArchiveOptions archive{};                        // POST of an application/x-tar body (--archive-* flags)
};

void register_upload_routes(Router& router, SandboxState& state, UploadOptions options = {});

}  // namespace envd::fs
