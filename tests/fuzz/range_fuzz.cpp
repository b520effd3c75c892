// Range headers of GET /files as Go's ServeContent decides them: every range handed out lies
// inside the file, and the Content-Range text of each is well-formed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "envd/rest/range.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 4) return 0;
  std::uint32_t small;
  std::memcpy(&small, data, 4);
  // Sizes from 0 to ~4 GiB, and sometimes near the int64 limit.
  std::int64_t file_size = (small & 1u) ? INT64_MAX - (small >> 1) : static_cast<std::int64_t>(small >> 1);
  std::string_view header(reinterpret_cast<const char*>(data + 4), size - 4);
  auto d = envd::rest::decide_range(header, file_size);
  for (const auto& r : d.ranges) {
    if (r.start < 0 || r.length < 0 || r.start > file_size || r.length > file_size - r.start) std::abort();
    (void)envd::rest::content_range(r, file_size);
  }
  (void)envd::rest::if_range_allows(header, "\"abc\"", 1700000000);
  return 0;
}
