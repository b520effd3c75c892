#pragma once
// GET /files (contract §6.5): a file's bytes, as Go's http.ServeContent serves them for envd,
// plus a strong ETag (fs/etag.h) so If-None-Match and If-Range work on content identity, not
// only on the second-granular Last-Modified.
//
// Errors, in envd's order: the prelude (files_common.h: binding, signing, user), path resolution
// (400), stat (404 / 500), a directory (400), Accept-Encoding (406), identity refused while a
// Range or conditional header is present (406), open (500). Then, for identity: If-Match /
// If-Unmodified-Since (412), If-None-Match / If-Modified-Since (304), If-Range, Range (206 single
// or multipart/byteranges, 416), else 200. gzip only when the client prefers it and sent no Range
// or conditional header: chunked, no Content-Length, weak ETag.
//
// The body streams in bounded memory: identity regions go to the socket with sendfile on
// HTTP/1.1 (read into DATA frames on h2c); gzip reads and compresses fixed chunks on the
// blocking pool. A client that goes away ends the download at once and the file is closed.
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <string_view>

#include "envd/http/exchange.h"
#include "envd/sandbox_state.h"
#include "fs/files_service.h"

namespace envd::fs {

boost::asio::awaitable<void> serve_download(http::Exchange& ex, const SandboxState& state, const FilesOptions& options);

// Go's checkPreconditions for a GET of an existing file with strong ETag `etag` and modification
// time `mtime_unix` (seconds; HTTP dates have no finer grain).
enum class Precondition { proceed, not_modified, failed };
struct PreconditionOutcome {
  Precondition result = Precondition::proceed;
  bool use_range = false;  // a Range header is present and If-Range (if any) holds
};
PreconditionOutcome check_preconditions(const http::RequestHead& req, std::string_view etag, std::int64_t mtime_unix);

}  // namespace envd::fs
