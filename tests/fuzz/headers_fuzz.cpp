// Header values parsed by the RPC layer: Connect-Timeout-Ms, grpc-timeout and
// Keepalive-Ping-Interval. Results stay within their documented ranges.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "envd/rpc/keepalive.h"
#include "envd/rpc/timeout.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view v(reinterpret_cast<const char*>(data), size);
  if (auto ms = envd::rpc::parse_connect_timeout(v); ms && ms->count() < 0) std::abort();
  if (auto ns = envd::rpc::parse_grpc_timeout(v); ns && ns->count() < 0) std::abort();
  auto k = envd::rpc::parse_keepalive_interval(v);
  if (k < envd::rpc::kMinKeepalive || k > envd::rpc::kMaxKeepalive) std::abort();
  (void)envd::rpc::parse_keepalive_interval(std::nullopt);
  return 0;
}
