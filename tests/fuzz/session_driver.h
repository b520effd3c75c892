#pragma once
// Drives envd's real HTTP stack (listener sniffing, HTTP/1.1 and HTTP/2 sessions, router, RPC
// adapter, the envdtest echo service and the control routes) with fuzzer bytes: one loopback TCP
// connection per input, written and half-closed by a client on the same thread, the loop run until
// the server closes or goes quiet. Single-threaded, so a run is reproducible.
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace envd::fuzz {

// Sends `prefix` then `data` on a fresh connection, runs the server until it closes the connection
// or makes no progress, then closes the client side and lets the server clean up.
void drive_connection(std::string_view prefix, const std::uint8_t* data, std::size_t size);

}  // namespace envd::fuzz
