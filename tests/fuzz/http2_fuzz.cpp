// The HTTP/2 session (our nghttp2 driver, flow control, stream handling, RPC over h2c): the input
// is everything after the client connection preface.
#include "tests/fuzz/session_driver.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  envd::fuzz::drive_connection("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", data, size);
  return 0;
}
