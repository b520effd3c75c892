#include "fs/files_service.h"

#include "fs/files_download.h"

namespace envd::fs {

// GET /files (files_download) and POST /files (files_upload) are added here as they land; both
// start with files_prelude (files_common.h).
void register_files_routes(Router& router, SandboxState& state, FilesOptions options) {
  router.add("GET", "/files", [&state, options](http::Exchange& ex) { return serve_download(ex, state, options); });
}

}  // namespace envd::fs
