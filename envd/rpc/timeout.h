#pragma once
// Deadline headers: Connect-Timeout-Ms (at most 10 digits) and grpc-timeout (at most 8 digits and
// a unit H M S m u n). A parse failure is the caller's invalid_argument.
#include <chrono>
#include <optional>
#include <string_view>

namespace envd::rpc {

std::optional<std::chrono::milliseconds> parse_connect_timeout(std::string_view value);
// Larger values (up to 99999999H) saturate at kMaxGrpcTimeout (100 years).
inline constexpr std::chrono::nanoseconds kMaxGrpcTimeout{100LL * 365 * 24 * 3600 * 1'000'000'000};
std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value);

}  // namespace envd::rpc
