#pragma once
// /files URL signing (contract §2.2, envd's validateSigning).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace envd::rest {

// "v1_" + base64_std_nopad(sha256(path ":" operation ":" username ":" token [":" expiration])),
// over the DECODED query values; the expiration is the parsed integer in decimal (the reference
// accepts `signature_expiration=04102444800` signed as "4102444800").
std::string files_signature(std::string_view path, std::string_view operation, std::string_view username,
                            std::string_view token, std::optional<std::int64_t> expiration);

enum class Signing { ok, header_mismatch, missing_signature, invalid_signature, expired };

struct SigningRequest {
  std::string_view operation;                 // "read" (GET) or "write" (POST)
  std::optional<std::string_view> header;     // X-Access-Token; an empty header counts as absent
  std::optional<std::string_view> signature;  // decoded `signature` query value (present even if empty)
  std::string_view path;                      // decoded `path` value, "" when absent
  std::string_view username;                  // decoded `username` value, "" when absent
  std::optional<std::int64_t> expiration;     // `signature_expiration`, when present
};

// `token` nullopt: open mode, always ok. Comparisons are constant-time. `now` is Unix seconds;
// exp == now is still valid.
Signing validate_signing(const std::optional<std::string>& token, const SigningRequest& req, std::int64_t now);

// The 401 jsonError message of each refusal ("" for ok).
std::string_view signing_message(Signing s);

}  // namespace envd::rest
