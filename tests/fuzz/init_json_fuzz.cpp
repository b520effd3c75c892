// POST /init bodies: any bytes parse or refuse without crashing, and what parses re-validates.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "envd/init.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  std::string error;
  auto req = envd::parse_init_request(body, &error);
  if (req && req->timestamp_ns) (void)envd::clock_needs_setting(0, *req->timestamp_ns);
  if (req) {
    envd::SandboxState state;
    (void)envd::apply_init(state, std::move(*req));
  }
  (void)envd::parse_rfc3339(body);
  return 0;
}
