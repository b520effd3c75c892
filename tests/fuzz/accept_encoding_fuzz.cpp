// Accept-Encoding negotiation of GET /files (§6.5): any header gives identity, gzip or a 406.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "envd/rest/accept_encoding.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view header(reinterpret_cast<const char*>(data), size);
  (void)envd::rest::parse_accept_encoding(header);
  for (bool cond : {false, true}) {
    auto d = envd::rest::negotiate_download_encoding(header, cond);
    if (d.status != 200 && d.status != 406) std::abort();
    if (cond && d.status == 200 && d.coding != envd::rest::ContentCoding::identity) std::abort();
  }
  return 0;
}
