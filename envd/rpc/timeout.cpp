#include "envd/rpc/timeout.h"

#include <cstdint>

namespace envd::rpc {

namespace {
std::optional<std::uint64_t> parse_digits(std::string_view s, std::size_t max_digits) {
  if (s.empty() || s.size() > max_digits) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}
}  // namespace

std::optional<std::chrono::milliseconds> parse_connect_timeout(std::string_view value) {
  auto v = parse_digits(value, 10);
  if (!v) return std::nullopt;
  return std::chrono::milliseconds(*v);
}

std::optional<std::chrono::nanoseconds> parse_grpc_timeout(std::string_view value) {
  if (value.size() < 2) return std::nullopt;
  auto v = parse_digits(value.substr(0, value.size() - 1), 8);
  if (!v) return std::nullopt;
  std::uint64_t unit_ns = 0;
  switch (value.back()) {
    case 'H': unit_ns = 3'600'000'000'000; break;
    case 'M': unit_ns = 60'000'000'000; break;
    case 'S': unit_ns = 1'000'000'000; break;
    case 'm': unit_ns = 1'000'000; break;
    case 'u': unit_ns = 1'000; break;
    case 'n': unit_ns = 1; break;
    default: return std::nullopt;
  }
  // 99999999H is 11,000 years: more nanoseconds than int64 holds (found by fuzzing: the chrono
  // conversion overflowed). Saturate at kMaxGrpcTimeout, which steady_clock::now() + it still fits.
  if (*v > static_cast<std::uint64_t>(kMaxGrpcTimeout.count()) / unit_ns) return kMaxGrpcTimeout;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(*v * unit_ns));
}

}  // namespace envd::rpc
