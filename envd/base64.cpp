#include "envd/base64.h"

namespace envd {

std::optional<std::string> base64_decode(std::string_view in, Base64 kind) {
  const char c62 = kind == Base64::standard ? '+' : '-';
  const char c63 = kind == Base64::standard ? '/' : '_';
  std::string out;
  unsigned val = 0;
  int bits = -8;
  std::size_t pad = 0;
  for (char c : in) {
    int d;
    if (c >= 'A' && c <= 'Z') {
      d = c - 'A';
    } else if (c >= 'a' && c <= 'z') {
      d = c - 'a' + 26;
    } else if (c >= '0' && c <= '9') {
      d = c - '0' + 52;
    } else if (c == c62) {
      d = 62;
    } else if (c == c63) {
      d = 63;
    } else if (c == '=') {
      ++pad;
      continue;
    } else {
      return std::nullopt;
    }
    if (pad) return std::nullopt;  // data after padding
    val = (val << 6) | static_cast<unsigned>(d);
    bits += 6;
    if (bits >= 0) {
      out.push_back(static_cast<char>((val >> bits) & 0xFF));
      bits -= 8;
    }
  }
  if (kind == Base64::standard && ((in.size() % 4) != 0 || pad > 2)) return std::nullopt;
  return out;
}

}  // namespace envd
