#include "envd/auth.h"

namespace envd {

namespace {
std::optional<std::string> base64_std_decode(std::string_view in) {
  std::string out;
  unsigned val = 0;
  int bits = -8;
  std::size_t pad = 0;
  for (char c : in) {
    int d;
    if (c >= 'A' && c <= 'Z')
      d = c - 'A';
    else if (c >= 'a' && c <= 'z')
      d = c - 'a' + 26;
    else if (c >= '0' && c <= '9')
      d = c - '0' + 52;
    else if (c == '+')
      d = 62;
    else if (c == '/')
      d = 63;
    else if (c == '=') {
      ++pad;
      continue;
    } else {
      return std::nullopt;
    }
    if (pad) return std::nullopt;  // data after padding
    val = (val << 6) | static_cast<unsigned>(d);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  if ((in.size() % 4) != 0 || pad > 2) return std::nullopt;
  return out;
}
}  // namespace

std::optional<std::string> basic_auth_user(std::optional<std::string_view> authorization) {
  if (!authorization) return std::nullopt;
  std::string_view h = *authorization;
  constexpr std::string_view kPrefix = "basic ";
  if (h.size() < kPrefix.size()) return std::nullopt;
  for (std::size_t i = 0; i < kPrefix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != kPrefix[i]) return std::nullopt;
  }
  auto decoded = base64_std_decode(h.substr(kPrefix.size()));
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
