#pragma once
// POST /init without HTTP (contract §6.4): parsing the body as Go's encoding/json would
// (case-insensitive field names, null = absent, type errors refused), validating the access token
// change, and applying the data to SandboxState with the timestamp ordering rule.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "envd/sandbox_state.h"

namespace envd {

struct VolumeMount {
  std::string nfs_target;
  std::string path;
};

struct InitRequest {
  std::optional<std::map<std::string, std::string>> env_vars;
  std::optional<std::string> access_token;
  std::optional<std::int64_t> timestamp_ns;  // unix nanoseconds
  std::optional<std::string> default_user;
  std::optional<std::string> default_workdir;
  std::optional<std::string> hyperloop_ip;
  std::optional<std::string> ca_bundle;
  std::optional<std::vector<VolumeMount>> volume_mounts;
  std::optional<std::string> lifecycle_id;
};

// Parsing in steps, so that nothing a client can make big is built before the token check:
//  1. check_init_json: the body is valid JSON nested at most `max_depth` deep (an empty body is
//     fine). No DOM: a streaming (SAX) pass that builds nothing.
//  2. check_init_request: every known field has the right type; fills only accessToken and
//     timestamp (all the token check needs). Unknown members are skipped unseen.
//  3. decode_init_request: the same walk, building every field (after the token check).
// Each refusal is a 400 (no body); `error` says why, for the log (never the token). Type errors:
// a top level that is neither an object nor null, a field of the wrong type, an unparsable
// timestamp, or an accessToken that is "" or contains a backslash (envd's SecureToken refuses
// escape sequences). Steps 2 and 3 need a body that passed step 1.
enum class InitCheck { ok, invalid, too_deep };
inline constexpr std::size_t kDefaultInitMaxDepth = 32;
InitCheck check_init_json(std::string_view body, std::size_t max_depth = kDefaultInitMaxDepth);
std::optional<InitRequest> check_init_request(std::string_view body, std::string* error = nullptr);
std::optional<InitRequest> decode_init_request(std::string_view body, std::string* error = nullptr);
// All three steps (tests, and callers with nothing to check in between).
std::optional<InitRequest> parse_init_request(std::string_view body, std::string* error = nullptr,
                                              std::size_t max_depth = kDefaultInitMaxDepth);

// Go's time.Time JSON format: RFC 3339 with optional fractional seconds → unix nanoseconds.
std::optional<std::int64_t> parse_rfc3339(std::string_view text);

enum class InitAuth { ok, mismatch, reset_not_authorized };

// Who may change the token. Without a metadata service (MMDS) to vouch for a new token:
//  - no token set yet → anyone (first-time setup);
//  - the body's accessToken equals the current token → ok (the orchestrator's re-init);
//  - the X-Access-Token header equals the current token → ok: the caller proved it holds the
//    token, so the body may replace it (new accessToken) or clear it (accessToken absent);
//  - otherwise 401: `access token reset not authorized` if the body has no token, else
//    `access token validation failed`.
InitAuth validate_init_token(const std::optional<std::string>& current, const std::optional<std::string>& body_token,
                             std::optional<std::string_view> header_token);
std::string_view init_auth_message(InitAuth auth);

struct InitOutcome {
  bool applied = false;              // false: an older timestamp, skipped (still 204)
  std::vector<std::string> ignored;  // orchestrator fields present but not served here
};

// Applies the request (after validation): timestamp ordering (older → skipped; equal counts as
// newer), envVars replace, accessToken set or cleared, defaultUser/defaultWorkdir when non-empty.
InitOutcome apply_init(SandboxState& state, InitRequest req);

// envd sets the clock when the local clock is more than 50 ms behind or more than 5 s ahead.
bool clock_needs_setting(std::int64_t local_ns, std::int64_t timestamp_ns);

}  // namespace envd
