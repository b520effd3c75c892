#include "envd/rest/quoted_printable.h"

#include <doctest/doctest.h>

#include <string>

using envd::rest::kMaxQpLine;
using envd::rest::QuotedPrintableDecoder;

namespace {

struct Decoded {
  std::string out;
  std::optional<std::string> error;
};

// Feeds `in` in pieces of `step` bytes, then finishes.
Decoded decode(std::string_view in, std::size_t step = SIZE_MAX) {
  QuotedPrintableDecoder d;
  Decoded r;
  while (!in.empty() && !r.error) {
    auto piece = in.substr(0, step);
    in.remove_prefix(piece.size());
    r.error = d.feed(piece, r.out);
  }
  if (!r.error) r.error = d.finish(r.out);
  return r;
}

}  // namespace

// Expectations taken from envd 0.6.13 answering the same multipart parts.
TEST_CASE("quoted-printable: escapes, soft breaks and trailing whitespace as envd decodes them") {
  for (std::size_t step : {SIZE_MAX, std::size_t{1}, std::size_t{3}}) {
    CAPTURE(step);
    auto r = decode("caf=C3=A9 =\r\nsoft  \r\nline2=3D=3d end", step);
    CHECK_FALSE(r.error);
    CHECK(r.out == "caf\xc3\xa9 soft\r\nline2== end");
    CHECK(decode("a=Zb", step).out == "a=Zb");  // not an escape: a literal '='
    CHECK(decode("x=  y", step).out == "x=  y");
    CHECK(decode("tail=", step).out == "tail");  // a soft break at the very end
    CHECK(decode("lf only\nnext", step).out == "lf only\nnext");
    CHECK(decode("\xe2\x9c\x93 raw\tutf-8", step).out == "\xe2\x9c\x93 raw\tutf-8");
  }
}

TEST_CASE("quoted-printable: errors in Go's words") {
  auto bad = decode(
      "bad\x01"
      "byte");
  CHECK(bad.error == "quotedprintable: invalid unescaped byte 0x01 in body");
  CHECK(decode("ok=\rX").error == "quotedprintable: invalid hex byte 0x0d");
  CHECK(decode("a= \tb=\t\n").out == "a= \tb");  // '=' then whitespace then LF: a soft break
  CHECK(decode("x= y\n").out == "x= y\n");
}

TEST_CASE("quoted-printable: a line is bounded (4 KiB with its LF), in any feeding") {
  std::string ok(kMaxQpLine - 1, 'a');
  ok += "\nb";
  CHECK(decode(ok, 1000).out.size() == kMaxQpLine + 1);
  std::string long_line(kMaxQpLine + 10, 'a');
  for (std::size_t step : {SIZE_MAX, std::size_t{1000}}) {
    auto r = decode(long_line, step);
    CHECK(r.error == "quotedprintable: line longer than 4096 bytes");
  }
}
