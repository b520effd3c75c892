#pragma once
// JSON output as Go's encoding/json writes it, for REST bodies whose bytes clients may compare:
// strings with HTML-safe escaping (<, >, & as \u003c...), U+2028/U+2029 escaped, invalid UTF-8
// replaced by U+FFFD; envd's jsonError body shape (contract §1.6).
#include <string>
#include <string_view>

namespace envd {

void append_go_json_string(std::string& out, std::string_view s);
std::string go_json_string(std::string_view s);

// `{"code":<status>,"message":"<text>"}` plus a newline (json.Encoder appends one).
std::string json_error_body(int status, std::string_view message);

}  // namespace envd
