#include "envd/base64.h"

#include <array>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

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

namespace {

constexpr char kStdAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// Every 12-bit value as its two base64 characters.
constexpr std::array<char, 2 * 4096> make_pairs() {
  std::array<char, 2 * 4096> t{};
  for (unsigned v = 0; v < 4096; ++v) {
    t[2 * v] = kStdAlphabet[v >> 6];
    t[2 * v + 1] = kStdAlphabet[v & 63];
  }
  return t;
}
constexpr std::array<char, 2 * 4096> kPairs = make_pairs();

#if defined(__x86_64__)
// 12 input bytes → 16 characters per step with SSSE3 (while 16 bytes can be loaded). Each 32-bit
// lane gets its 3 bytes as [b1 b0 b2 b1]; two multiplies move the four 6-bit fields to the bottom
// of the lane's four bytes; then one byte shuffle picks, per field, the offset that turns 0..63
// into its character (ranges A–Z, a–z, 0–9, '+', '/').
__attribute__((target("ssse3"))) void encode_ssse3(const unsigned char*& p, char*& o, std::size_t& n) {
  const __m128i spread = _mm_setr_epi8(1, 0, 2, 1, 4, 3, 5, 4, 7, 6, 8, 7, 10, 9, 11, 10);
  const __m128i mask_ac = _mm_set1_epi32(0x0fc0fc00);
  const __m128i mul_ac = _mm_set1_epi32(0x04000040);
  const __m128i mask_bd = _mm_set1_epi32(0x003f03f0);
  const __m128i mul_bd = _mm_set1_epi32(0x01000010);
  const __m128i offsets = _mm_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                        '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
  while (n >= 16) {
    __m128i in = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)), spread);
    const __m128i ac = _mm_mulhi_epu16(_mm_and_si128(in, mask_ac), mul_ac);
    const __m128i bd = _mm_mullo_epi16(_mm_and_si128(in, mask_bd), mul_bd);
    const __m128i idx = _mm_or_si128(ac, bd);
    // 0..25 → 13 ('A'), 26..51 → 0 ('a' - 26), 52..61 → 1..10 ('0' - 52), 62 → 11, 63 → 12.
    __m128i sel = _mm_subs_epu8(idx, _mm_set1_epi8(51));
    sel = _mm_or_si128(sel, _mm_and_si128(_mm_cmpgt_epi8(_mm_set1_epi8(26), idx), _mm_set1_epi8(13)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), _mm_add_epi8(idx, _mm_shuffle_epi8(offsets, sel)));
    p += 12;
    o += 16;
    n -= 12;
  }
}

bool have_ssse3() {
  static const bool yes = [] {
    __builtin_cpu_init();  // may run before libgcc's own constructor
    return __builtin_cpu_supports("ssse3") != 0;
  }();
  return yes;
}
#endif

// One 3-byte group → 4 characters, two per table look-up.
inline void encode_group(const unsigned char* p, char* o) {
  const unsigned v = unsigned{p[0]} << 16 | unsigned{p[1]} << 8 | p[2];
  std::memcpy(o, &kPairs[2 * (v >> 12)], 2);
  std::memcpy(o + 2, &kPairs[2 * (v & 0xFFF)], 2);
}

}  // namespace

void base64_append(std::string& out, std::string_view in) {
  const std::size_t at = out.size();
  out.resize(at + (in.size() + 2) / 3 * 4);
  char* o = out.data() + at;
  const auto* p = reinterpret_cast<const unsigned char*>(in.data());
  std::size_t n = in.size();
#if defined(__x86_64__)
  if (have_ssse3()) encode_ssse3(p, o, n);
#endif
  // Four groups (12 input bytes) a step: an unrolled loop the compiler schedules well.
  while (n >= 12) {
    for (int g = 0; g < 4; ++g) encode_group(p + 3 * g, o + 4 * g);
    p += 12;
    o += 16;
    n -= 12;
  }
  for (; n >= 3; n -= 3, p += 3, o += 4) encode_group(p, o);
  if (n > 0) {
    unsigned v = unsigned{p[0]} << 16;
    if (n == 2) v |= unsigned{p[1]} << 8;
    o[0] = kStdAlphabet[v >> 18];
    o[1] = kStdAlphabet[(v >> 12) & 63];
    o[2] = n == 2 ? kStdAlphabet[(v >> 6) & 63] : '=';
    o[3] = '=';
  }
}

bool Base64Stream::feed(std::string_view in, std::string& out) {
  pending_.append(in);
  std::size_t whole = pending_.size() / 4 * 4;
  // Each group decodes on its own: padding may end a segment in the middle of the body.
  for (std::size_t i = 0; i < whole; i += 4) {
    auto group = base64_decode(std::string_view(pending_).substr(i, 4), Base64::standard);
    if (!group) return false;
    out += *group;
  }
  pending_.erase(0, whole);
  return true;
}

std::string base64_encode(std::string_view in, bool pad) {
  std::string out;
  base64_append(out, in);
  if (!pad) {
    while (!out.empty() && out.back() == '=') out.pop_back();
  }
  return out;
}

}  // namespace envd
