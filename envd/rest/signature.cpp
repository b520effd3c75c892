#include "envd/rest/signature.h"

#include "envd/base64.h"
#include "envd/rest/sha256.h"

namespace envd {
// Defined with the access-token gate (moving to envd/secure); declared here to keep the include light.
bool constant_time_equal(std::string_view a, std::string_view b);
}  // namespace envd

namespace envd::rest {

std::string files_signature(std::string_view path, std::string_view operation, std::string_view username,
                            std::string_view token, std::optional<std::int64_t> expiration) {
  Sha256 h;
  h.update(path);
  h.update(":");
  h.update(operation);
  h.update(":");
  h.update(username);
  h.update(":");
  h.update(token);
  if (expiration) {
    h.update(":");
    h.update(std::to_string(*expiration));
  }
  auto d = h.finish();
  return "v1_" + base64_encode(std::string_view(reinterpret_cast<const char*>(d.data()), d.size()), false);
}

Signing validate_signing(const std::optional<std::string>& token, const SigningRequest& req, std::int64_t now) {
  if (!token) return Signing::ok;
  if (req.header && !req.header->empty()) {
    return constant_time_equal(*req.header, *token) ? Signing::ok : Signing::header_mismatch;
  }
  if (!req.signature) return Signing::missing_signature;
  std::string expected = files_signature(req.path, req.operation, req.username, *token, req.expiration);
  if (!constant_time_equal(*req.signature, expected)) return Signing::invalid_signature;
  if (req.expiration && *req.expiration < now) return Signing::expired;
  return Signing::ok;
}

std::string_view signing_message(Signing s) {
  switch (s) {
    case Signing::ok: return "";
    case Signing::header_mismatch: return "access token present in header but does not match";
    case Signing::missing_signature: return "missing signature query parameter";
    case Signing::invalid_signature: return "invalid signature";
    case Signing::expired: return "signature is already expired";
  }
  return "";
}

}  // namespace envd::rest
