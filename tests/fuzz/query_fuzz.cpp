// Query strings of /files requests (form-urlencoded, Go's url.ParseQuery rules) and the
// single-valued parameter binding: never crash, decoded values never grow.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "envd/rest/query.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view raw(reinterpret_cast<const char*>(data), size);
  auto q = envd::rest::Query::parse(raw);
  for (const auto& [k, vs] : q.all()) {
    if (k.size() > size) std::abort();
    for (const auto& v : vs)
      if (v.size() > size) std::abort();
  }
  (void)envd::rest::single_value(q, "path");
  (void)envd::rest::single_int64(q, "signature_expiration");
  (void)envd::rest::query_unescape(raw);
  (void)envd::rest::go_quote(raw);
  return 0;
}
