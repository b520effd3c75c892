#pragma once
// Base64 decoding for the two places headers carry it: Basic credentials (standard alphabet,
// padding required as Go's StdEncoding) and HTTP2-Settings (URL-safe alphabet, no padding).
#include <optional>
#include <string>
#include <string_view>

namespace envd {

enum class Base64 { standard, url_unpadded };

// nullopt on characters outside the alphabet, data after padding, or (standard) a bad length.
std::optional<std::string> base64_decode(std::string_view in, Base64 kind);

}  // namespace envd
