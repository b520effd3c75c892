// The HTTP/1.1 path through our session code: request heads, chunked bodies, pipelining,
// 100-continue, `Upgrade: h2c`, then routing, REST handlers and the RPC adapter.
#include "tests/fuzz/session_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  envd::fuzz::drive_connection({}, data, size);
  return 0;
}
