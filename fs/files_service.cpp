#include "fs/files_service.h"

namespace envd::fs {

// GET /files (files_download) and POST /files (files_upload) are added here as they land; both
// start with files_prelude (files_common.h).
void register_files_routes(Router& router, SandboxState& state, FilesOptions options) {
  (void)router;
  (void)state;
  (void)options;
}

}  // namespace envd::fs
