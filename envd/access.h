#pragma once
// Request admission before routing (contract §1.2 handler chain, §2):
//  1. the access token gate (§2.1): once /init set a token, every request must carry it in
//     `X-Access-Token`, except exactly GET /health, GET /files, POST /files and POST /init;
//  2. the Basic user check (§2.3) for REST paths: a Basic header naming an unknown user is refused
//     with a Connect-style `unauthenticated` error. RPC paths are checked by the RPC layer, which
//     shapes the error for the request's protocol. GET /health is left out on purpose: it is the
//     liveness probe and §6.1 makes it always 204.
#include <optional>
#include <string_view>

#include "envd/http/exchange.h"
#include "envd/router.h"
#include "envd/sandbox_state.h"
#include "envd/secure.h"

namespace envd {

// True for the method+path pairs the token gate lets through (exact strings).
bool token_exempt(std::string_view method, std::string_view path);

// The 401 the gate answers (plain jsonError shape, also on RPC paths).
Reply token_rejection();

std::optional<Reply> check_access_token(const SandboxState& state, const http::RequestHead& req);
std::optional<Reply> check_basic_user(const SandboxState& state, const http::RequestHead& req, bool rpc_path);

}  // namespace envd
