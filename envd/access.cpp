#include "envd/access.h"

#include "envd/auth.h"
#include "envd/json_util.h"
#include "envd/rpc/status.h"

namespace envd {

bool token_exempt(std::string_view method, std::string_view path) {
  if (method == "GET") return path == "/health" || path == "/files";
  if (method == "POST") return path == "/files" || path == "/init";
  return false;
}

Reply token_rejection() {
  Reply r;
  r.status = 401;
  r.headers = {{"content-type", "application/json; charset=utf-8"}, {"x-content-type-options", "nosniff"}};
  r.body =
      json_error_body(401, "unauthorized access, please provide a valid access token or method signing if supported");
  return r;
}

std::optional<Reply> check_access_token(const SandboxState& state, const http::RequestHead& req) {
  if (!state.access_token) return std::nullopt;
  if (token_exempt(req.method, req.path)) return std::nullopt;
  auto header = req.header("x-access-token");
  if (header && constant_time_equal(*header, *state.access_token)) return std::nullopt;
  return token_rejection();
}

std::optional<Reply> check_basic_user(const SandboxState& state, const http::RequestHead& req, bool rpc_path) {
  if (rpc_path) return std::nullopt;
  if (req.method == "GET" && req.path == "/health") return std::nullopt;
  auto name = basic_auth_user(req.header("authorization"));
  if (!name || state.users.lookup(*name)) return std::nullopt;
  Reply r;
  r.status = 401;
  r.headers = {{"content-type", "application/json"}};
  r.body = rpc::connect_error_json(rpc::error(rpc::Code::unauthenticated, "invalid username: '" + *name + "'"));
  return r;
}

}  // namespace envd
