// The access checks a client's bytes reach before anything else (contract §2): the Basic user
// name (`Authorization`), and /files signing from a raw query string and an `X-Access-Token`
// header. Input lines: Authorization value, query string, header value (absent when the first
// flag bit is clear), token (absent — open mode — when the second bit is clear). Checks §2.2's
// order of refusals, that the constant-time comparison is plain equality, that a URL signed for
// the request's own values passes unless expired, and that a Basic name never holds a ':'.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "envd/auth.h"
#include "envd/base64.h"
#include "envd/rest/query.h"
#include "envd/rest/signature.h"
#include "envd/secure.h"

namespace {
std::string_view next_line(std::string_view& in) {
  auto nl = in.find('\n');
  std::string_view line = in.substr(0, nl);
  in = nl == std::string_view::npos ? std::string_view() : in.substr(nl + 1);
  return line;
}

void check_equal(std::string_view a, std::string_view b) {
  if (envd::constant_time_equal(a, b) != (a == b)) std::abort();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t flags = data[0];
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string_view authorization = next_line(in);
  const std::string_view raw_query = next_line(in);
  const std::string_view header_line = next_line(in);
  const std::string_view token_line = next_line(in);
  const std::optional<std::string_view> header =
      (flags & 1) ? std::optional<std::string_view>(header_line) : std::nullopt;
  const std::optional<std::string> token = (flags & 2) ? std::optional<std::string>(token_line) : std::nullopt;
  const std::string_view op = (flags & 4) ? "write" : "read";
  const std::int64_t now = 1700000000 + static_cast<std::int8_t>(flags & 0xF0);

  // Basic user: the name ends at the first ':' of the decoded credentials, and any name without
  // one comes back from the header the SDKs build.
  if (auto name = envd::basic_auth_user(authorization)) {
    if (name->find(':') != std::string::npos) std::abort();
  }
  if (authorization.find(':') == std::string_view::npos) {
    std::string built = "Basic " + envd::base64_encode(std::string(authorization) + ":");
    auto back = envd::basic_auth_user(built);
    if (!back || *back != authorization) std::abort();
  }

  // /files signing as the prelude binds it.
  auto q = envd::rest::Query::parse(raw_query);
  auto path = envd::rest::single_value(q, "path");
  auto user = envd::rest::single_value(q, "username");
  auto sig = envd::rest::single_value(q, "signature");
  auto exp = envd::rest::single_int64(q, "signature_expiration");
  if (!path.error.empty() || !user.error.empty() || !sig.error.empty() || !exp.error.empty()) return 0;
  const std::string path_value = path.value.value_or(""), user_value = user.value.value_or("");
  envd::rest::SigningRequest req{.operation = op,
                                 .header = header,
                                 .signature = sig.value ? std::optional<std::string_view>(*sig.value) : std::nullopt,
                                 .path = path_value,
                                 .username = user_value,
                                 .expiration = exp.value};
  using envd::rest::Signing;
  const Signing got = envd::rest::validate_signing(token, req, now);
  if (!token) {
    if (got != Signing::ok) std::abort();
    return 0;
  }
  check_equal(header_line, *token);
  if (header && !header->empty()) {
    if (got != (*header == *token ? Signing::ok : Signing::header_mismatch)) std::abort();
    return 0;
  }
  if (!sig.value) {
    if (got != Signing::missing_signature) std::abort();
    return 0;
  }
  const std::string expected = envd::rest::files_signature(req.path, op, req.username, *token, req.expiration);
  check_equal(*sig.value, expected);
  if (*sig.value != expected) {
    if (got != Signing::invalid_signature) std::abort();
  } else if (got != (exp.value && *exp.value < now ? Signing::expired : Signing::ok)) {
    std::abort();
  }
  // The same request, signed properly: ok unless expired; for the other operation: refused.
  auto good = req;
  good.signature = expected;
  if (envd::rest::validate_signing(token, good, now) !=
      (exp.value && *exp.value < now ? Signing::expired : Signing::ok))
    std::abort();
  good.operation = op == "read" ? "write" : "read";
  if (envd::rest::validate_signing(token, good, now) != Signing::invalid_signature) std::abort();
  return 0;
}
