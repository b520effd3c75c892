#include "envd/auth.h"

#include "envd/base64.h"

namespace envd {

std::optional<std::string> basic_auth_user(std::optional<std::string_view> authorization) {
  if (!authorization) return std::nullopt;
  std::string_view h = *authorization;
  constexpr std::string_view kPrefix = "basic ";
  if (h.size() < kPrefix.size()) return std::nullopt;
  for (std::size_t i = 0; i < kPrefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != kPrefix[i]) return std::nullopt;
  }
  auto decoded = base64_decode(h.substr(kPrefix.size()), Base64::standard);
  if (!decoded) return std::nullopt;
  auto colon = decoded->find(':');
  if (colon == std::string::npos) return std::nullopt;
  return decoded->substr(0, colon);
}

rpc::Status resolve_request_user(const SandboxState& state, std::optional<std::string_view> authorization, User& out) {
  std::string name;
  if (auto basic = basic_auth_user(authorization)) {
    auto user = state.users.lookup(*basic);
    if (!user) return rpc::error(rpc::Code::unauthenticated, "invalid username: '" + *basic + "'");
    out = std::move(*user);
    return {};
  }
  if (state.default_user.empty()) return rpc::error(rpc::Code::unauthenticated, "no user specified");
  auto user = state.users.lookup(state.default_user);
  if (!user) return rpc::error(rpc::Code::unauthenticated, "invalid username: '" + state.default_user + "'");
  out = std::move(*user);
  return {};
}

}  // namespace envd
