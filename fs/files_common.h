#pragma once
// The request prelude shared by GET /files and POST /files (contract §2.1, §2.2, §2.3, §6.5,
// §6.6): query binding, then signing, then the user. The access-token gate (envd/access.*) lets
// GET and POST /files through; they validate the token or a signed URL here themselves.
//
//  1. Query binding as envd's oapi-codegen wrapper: `path`, `username`, `signature`,
//     `signature_expiration`, each single-valued (repeated → 400 text/plain `Invalid format for
//     parameter …`), `signature_expiration` an int64 (else 400 text/plain).
//  2. Signing (§2.2, envd/rest/signature.h), only when a token is set: an `X-Access-Token`
//     header must equal it; without one, a `signature` over the DECODED `path` and `username`
//     values (unnormalised) and the operation (`read` for GET, `write` for POST), with
//     `signature_expiration` not in the past. Each refusal is a 401 with envd's words.
//  3. User (§2.3): `username` present → looked up (unknown, or empty → 401 `error looking up user
//     '<u>': user: unknown user <u>`); absent → the default user; no default → 400 `username not
//     provided`.
// Errors are jsonError replies (§1.6) except the binding ones (text/plain, as Go's http.Error).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "envd/http/exchange.h"
#include "envd/router.h"
#include "envd/sandbox_state.h"
#include "envd/users.h"

namespace envd::fs {

enum class FileOp { read, write };

struct FilesRequest {
  std::optional<std::string> path;      // decoded `path` query value, as sent (not resolved)
  std::optional<std::string> username;  // decoded `username` query value
  User user;                            // the user acting (looked up, or the default user)
};

// jsonError reply (envd/error_reply.h's json_error_reply).
Reply json_error(int status, std::string_view message);

// The current Unix time in whole seconds from CLOCK_REALTIME, for signature expiry: time(2) reads
// the coarse clock, which lags up to a tick behind at a second boundary, so a URL expiring at
// now-1 would still pass for those milliseconds (Go's time.Now() is precise).
std::int64_t unix_seconds_now();

// Steps 1–3 above. `now_unix` is the current time in seconds (a parameter for tests).
std::variant<FilesRequest, Reply> files_prelude(const SandboxState& state, const http::RequestHead& req, FileOp op,
                                                std::int64_t now_unix);

// §3.2 resolution of a /files path for `user`: the resolved path, or the resolver's error text.
// An empty path resolves to the default workdir, else the user's home.
struct FilesPath {
  std::string path;
  std::string error;
};
FilesPath resolve_files_path(const SandboxState& state, const User& user, std::string_view raw);

// Sends a Reply (used for every prelude refusal).
boost::asio::awaitable<void> send_reply(http::Exchange& ex, Reply reply);

}  // namespace envd::fs
