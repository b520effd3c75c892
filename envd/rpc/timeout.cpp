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
  using namespace std::chrono;
  switch (value.back()) {
    case 'H': return duration_cast<nanoseconds>(hours(*v));
    case 'M': return duration_cast<nanoseconds>(minutes(*v));
    case 'S': return duration_cast<nanoseconds>(seconds(*v));
    case 'm': return duration_cast<nanoseconds>(milliseconds(*v));
    case 'u': return duration_cast<nanoseconds>(microseconds(*v));
    case 'n': return nanoseconds(*v);
    default: return std::nullopt;
  }
}

}  // namespace envd::rpc
