#pragma once
// Media types and their parameters as Go's mime package reads and writes them
// (mime.ParseMediaType, mime.FormatMediaType): Content-Type, Content-Disposition.
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace envd::rest {

struct MediaType {
  std::string type;                           // lower-cased ("multipart/form-data", "form-data")
  std::map<std::string, std::string> params;  // lower-cased keys, decoded values
};

// Go's mime.ParseMediaType: `type[/subtype]` (tokens), then `; key=value` parameters (token or
// quoted-string; a backslash escapes only the tspecials, as Go's consumeValue), RFC 2231
// `key*=charset'lang'pct` (utf-8 and us-ascii) and `key*0=…; key*1*=…` continuations, which win
// over the plain key. A trailing ';' is allowed. nullopt on any error (the caller then has no
// parameters: Go's multipart.Part leaves a bad Content-Disposition with none, so such a part has
// no form name and no filename). The fuzzer's entry point.
std::optional<MediaType> parse_media_type(std::string_view v);

// Go's mime.FormatMediaType (unit of /files downloads, see content.h).
std::string format_media_type(std::string_view type, const std::map<std::string, std::string>& params);

bool is_token_char(char c);
bool is_tspecial(char c);

}  // namespace envd::rest
