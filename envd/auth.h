#pragma once
// The requesting user (contract §2.3): `Authorization: Basic base64("<user>:")` on every request.
// No header or a non-Basic one → the default user. A Basic user that does not exist (including an
// empty name) → unauthenticated `invalid username: '<u>'`.
#include <optional>
#include <string>
#include <string_view>

#include "envd/rpc/status.h"
#include "envd/sandbox_state.h"

namespace envd {

// The user name in a Basic Authorization header; nullopt if absent, not Basic, or undecodable
// (Go's Request.BasicAuth reports !ok for those, and envd then uses the default user).
std::optional<std::string> basic_auth_user(std::optional<std::string_view> authorization);

// Resolves the user a request acts as; fills `out` or returns unauthenticated.
rpc::Status resolve_request_user(const SandboxState& state, std::optional<std::string_view> authorization, User& out);

}  // namespace envd
