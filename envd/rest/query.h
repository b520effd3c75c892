#pragma once
// Query strings decoded as application/x-www-form-urlencoded, the way Go's url.ParseQuery (and
// so envd's oapi-codegen binding through r.URL.Query()) does: pairs split on '&', '+' is a space,
// then percent-decoding. A pair that cannot be decoded (a bad '%' escape, or a ';' anywhere in
// it) is dropped and the other pairs are kept: Go records an error that Query() throws away, so
// `?path=%zz` is a request without `path` (the reference envd then serves the home directory's
// 400), and `?path=/a;x=1` too.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace envd::rest {

// Go's url.QueryUnescape: '+' → ' ', "%XX" → byte; nullopt on a '%' not followed by two hex digits.
std::optional<std::string> query_unescape(std::string_view s);

class Query {
 public:
  // The fuzzer's entry point: never fails, bad pairs are dropped (see above).
  static Query parse(std::string_view raw);

  // All values of a key in the order they appeared (empty when absent).
  const std::vector<std::string>& values(std::string_view key) const;
  bool has(std::string_view key) const { return map_.find(key) != map_.end(); }
  // Whether any pair was dropped (Go's ParseQuery error).
  bool had_error() const { return had_error_; }
  const std::map<std::string, std::vector<std::string>, std::less<>>& all() const { return map_; }

 private:
  std::map<std::string, std::vector<std::string>, std::less<>> map_;
  bool had_error_ = false;
};

// A single-valued parameter, bound as oapi-codegen does. `error` non-empty means: answer 400
// text/plain with `error + "\n"` (Go's http.Error), e.g. for a repeated parameter
// "Invalid format for parameter path: multiple values for single value parameter 'path'".
struct SingleValue {
  std::optional<std::string> value;  // nullopt: absent
  std::string error;
};
SingleValue single_value(const Query& q, std::string_view name);

struct SingleInt {
  std::optional<std::int64_t> value;
  std::string error;
};
// As single_value, then Go's strconv.ParseInt(v, 10, 64) (an optional sign, decimal digits):
// "Invalid format for parameter signature_expiration: error binding string parameter:
// strconv.ParseInt: parsing \"abc\": invalid syntax" (or "value out of range").
SingleInt single_int64(const Query& q, std::string_view name);

// Go's strconv.Quote, as its error texts embed values (printable UTF-8 kept; \" \\ \n \t \xNN ...).
std::string go_quote(std::string_view s);

}  // namespace envd::rest
