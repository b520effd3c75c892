#include "envd/base64.h"

#include <doctest/doctest.h>

using envd::Base64;
using envd::base64_decode;

TEST_CASE("base64: standard alphabet with padding") {
  CHECK(base64_decode("dXNlcjo=", Base64::standard) == "user:");
  CHECK(base64_decode("cm9vdDpwdw==", Base64::standard) == "root:pw");
  CHECK(base64_decode("", Base64::standard) == "");
  CHECK_FALSE(base64_decode("dXNlcjo", Base64::standard));   // missing padding
  CHECK_FALSE(base64_decode("dX=NlcjE", Base64::standard));  // data after padding
  CHECK_FALSE(base64_decode("dXNl!jo=", Base64::standard));  // outside the alphabet
  CHECK_FALSE(base64_decode("AAAA-_==", Base64::standard));  // URL alphabet
}

TEST_CASE("base64: URL-safe alphabet without padding (HTTP2-Settings)") {
  CHECK(base64_decode("AAMAAABkAAQAoAAAAAIAAAAA", Base64::url_unpadded) ==
        std::string("\x00\x03\x00\x00\x00\x64\x00\x04\x00\xa0\x00\x00\x00\x02\x00\x00\x00\x00", 18));
  CHECK(base64_decode("_-8", Base64::url_unpadded) == "\xff\xef");
  CHECK_FALSE(base64_decode("+/8", Base64::url_unpadded));
}

TEST_CASE("base64: encoding, standard alphabet with padding") {
  CHECK(envd::base64_encode("") == "");
  CHECK(envd::base64_encode("f") == "Zg==");
  CHECK(envd::base64_encode("fo") == "Zm8=");
  CHECK(envd::base64_encode("foo") == "Zm9v");
  CHECK(envd::base64_encode("foob") == "Zm9vYg==");
  CHECK(envd::base64_encode("f", false) == "Zg");
  CHECK(envd::base64_encode("fo", false) == "Zm8");
  CHECK(envd::base64_encode("foo", false) == "Zm9v");
  CHECK(envd::base64_encode("", false) == "");
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  CHECK(envd::base64_decode(envd::base64_encode(all), envd::Base64::standard) == all);
}

TEST_CASE("base64: a stream of padded segments in pieces of any size") {
  std::string encoded = envd::base64_encode("A") + envd::base64_encode("BC") + envd::base64_encode("hello world");
  for (std::size_t step = 1; step <= encoded.size(); ++step) {
    envd::Base64Stream s;
    std::string out;
    for (std::size_t i = 0; i < encoded.size(); i += step)
      REQUIRE(s.feed(std::string_view(encoded).substr(i, step), out));
    CHECK(s.complete());
    CHECK(out == "ABChello world");
  }
  envd::Base64Stream bad;
  std::string out;
  CHECK_FALSE(bad.feed("QQ=!", out));
  envd::Base64Stream partial;
  CHECK(partial.feed("Zm9vY", out));
  CHECK_FALSE(partial.complete());
}

namespace {
// A plain reference encoder (one character per 6 bits), independent of the table and SIMD paths.
std::string reference_base64(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16 | static_cast<unsigned char>(in[i + 1]) << 8 |
                 static_cast<unsigned char>(in[i + 2]);
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], kAlphabet[(v >> 6) & 63], kAlphabet[v & 63]};
  }
  if (std::size_t rest = in.size() - i; rest > 0) {
    unsigned v = static_cast<unsigned char>(in[i]) << 16;
    if (rest == 2) v |= static_cast<unsigned char>(in[i + 1]) << 8;
    out += {kAlphabet[v >> 18], kAlphabet[(v >> 12) & 63], rest == 2 ? kAlphabet[(v >> 6) & 63] : '=', '='};
  }
  return out;
}
}  // namespace

TEST_CASE("base64_append: the reference encoder's text, appended, for every length and byte") {
  std::string in;
  for (int i = 0; i < 600; ++i) in.push_back(static_cast<char>((i * 131 + 7) & 0xFF));
  for (std::size_t n = 0; n <= in.size(); ++n) {
    std::string_view piece = std::string_view(in).substr(in.size() - n);
    std::string out = "prefix";
    envd::base64_append(out, piece);
    REQUIRE(out == "prefix" + reference_base64(piece));
    REQUIRE(envd::base64_encode(piece) == reference_base64(piece));
  }
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string out;
  envd::base64_append(out, all);
  CHECK(out == reference_base64(all));
  CHECK(base64_decode(out, Base64::standard) == all);
}
