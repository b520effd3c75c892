#pragma once
// HTTP dates (RFC 9110 §5.6.7): IMF-fixdate output, and the three input forms Go's http.ParseTime
// accepts (IMF-fixdate, RFC 850 with a two-digit year, asctime), parsed as strictly as Go's
// time.Parse does (names case-insensitive, fields in range, no extra text).
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace envd {

// "Sun, 06 Nov 1994 08:49:37 GMT" for a Unix time in seconds (UTC).
std::string format_http_date(std::int64_t unix_seconds);

// The current time as IMF-fixdate, formatted once per second per thread (the `Date` header).
std::string_view http_date_now();

// Unix seconds, or nullopt when `s` is in none of the three forms (the fuzzer's entry point).
std::optional<std::int64_t> parse_http_date(std::string_view s);

}  // namespace envd
