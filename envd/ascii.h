#pragma once
// ASCII-only case folding, as HTTP and Go's strings.EqualFold over ASCII treat header names,
// media types and tokens. Bytes ≥ 0x80 are compared as they are (never locale-dependent).
#include <string>
#include <string_view>

namespace envd::ascii {

constexpr char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + ('a' - 'A')) : c; }

inline std::string lower(std::string_view s) {
  std::string out(s);
  for (auto& c : out) c = lower(c);
  return out;
}

constexpr bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

}  // namespace envd::ascii
