#pragma once
// Accept-Encoding negotiation for GET /files (contract §6.5), as the reference envd decides it:
// - entries split on ',', the coding name trimmed and compared case-insensitively; unknown codings
//   (br, deflate, x-gzip) are ignored;
// - q from the last `q=` parameter (key exactly `q`/`Q`, value as Go's ParseFloat; a parse error
//   or a negative value means 1; values above 1 are kept);
// - the first entry with the highest q > 0 wins (ties keep the earlier entry); `*` means identity
//   unless identity is rejected, then gzip;
// - identity is rejected by any `identity;q=0`, or by `*;q=0` when identity is not listed;
// - nothing chosen: identity when not rejected, else 406.
// Only the first Accept-Encoding header counts (Go's Header.Get); an empty one is no header.
#include <optional>
#include <string_view>

namespace envd::rest {

enum class ContentCoding { identity, gzip };

struct AcceptEncoding {
  std::optional<ContentCoding> chosen;  // nullopt: nothing acceptable (406)
  bool identity_rejected = false;
};

// The fuzzer's entry point.
AcceptEncoding parse_accept_encoding(std::string_view header);

inline constexpr std::string_view kNoAcceptableEncoding =
    "error parsing Accept-Encoding: no acceptable encoding found, supported: [gzip]";
inline constexpr std::string_view kIdentityNotAcceptable =
    "identity encoding not acceptable for Range or conditional request";

struct DownloadEncoding {
  int status = 200;  // 200, or 406 with `error` as the jsonError message
  ContentCoding coding = ContentCoding::identity;
  std::string_view error;
};

// `range_or_conditional`: a non-empty Range, If-Modified-Since, If-None-Match or If-Range header
// (If-Match and If-Unmodified-Since do not count). Those force identity (ServeContent answers
// them), or 406 when identity is rejected.
DownloadEncoding negotiate_download_encoding(std::string_view accept_encoding, bool range_or_conditional);

}  // namespace envd::rest
