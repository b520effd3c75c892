#include "envd/rest/range.h"

#include <doctest/doctest.h>

#include <string>

using envd::rest::decide_range;
using envd::rest::RangeOutcome;

namespace {
// The answer in the reference's words: "200", "416 */10", "416 invalid", or the Content-Range
// values of a 206 joined by ", ".
std::string answer(std::string_view header, std::int64_t size) {
  auto d = decide_range(header, size);
  switch (d.outcome) {
    case RangeOutcome::whole: return "200";
    case RangeOutcome::no_overlap: return "416 " + envd::rest::unsatisfied_content_range(size);
    case RangeOutcome::invalid: return "416 invalid";
    case RangeOutcome::partial: break;
  }
  std::string s;
  for (const auto& r : d.ranges) s += (s.empty() ? "" : ", ") + envd::rest::content_range(r, size);
  return s;
}
}  // namespace

TEST_CASE("decide_range: what the reference envd answered for a 10-byte file") {
  struct Case {
    const char* header;
    const char* want;
  };
  const Case cases[] = {
      {"", "200"},
      {"bytes=0-3", "bytes 0-3/10"},
      {"bytes=3-", "bytes 3-9/10"},
      {"bytes=-3", "bytes 7-9/10"},
      {"bytes=-0", "bytes 10-9/10"},
      {"bytes=-20", "bytes 0-9/10"},
      {"bytes=8-20", "bytes 8-9/10"},
      {"bytes=10-", "416 bytes */10"},
      {"bytes=10-12", "416 bytes */10"},
      {"bytes=10-,20-", "416 bytes */10"},
      {"bytes=10-,0-1", "bytes 0-1/10"},
      {"bytes=5-2", "416 invalid"},
      {"bytes= 1 - 2 ", "bytes 1-2/10"},
      {"bytes=0-0,2-3", "bytes 0-0/10, bytes 2-3/10"},
      {"bytes=0-1 ,3-4", "bytes 0-1/10, bytes 3-4/10"},
      {"bytes=0-4,5-9", "bytes 0-4/10, bytes 5-9/10"},
      {"bytes=0-4,5-10", "bytes 0-4/10, bytes 5-9/10"},
      {"bytes=0-,1-", "200"},     // 19 bytes asked of 10: ranges ignored
      {"bytes=0-4, 4-9", "200"},  // 11 of 10
      {"bytes=,,1-2,,", "bytes 1-2/10"},
      {"bytes=", "200"},
      {"Bytes=0-1", "416 invalid"},
      {"items=0-1", "416 invalid"},
      {"bytes=1", "416 invalid"},
      {"bytes=-", "416 invalid"},
      {"bytes=--1", "416 invalid"},
      {"bytes=+1-2", "bytes 1-2/10"},
      {"bytes=1-+2", "bytes 1-2/10"},
      {"bytes=01-02", "bytes 1-2/10"},
      {"bytes=99999999999999999999-", "416 invalid"},
      {"bytes=-1-2", "416 invalid"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    CHECK(answer(c.header, 10) == c.want);
  }
}

TEST_CASE("decide_range: an empty file (reference)") {
  CHECK(answer("bytes=0-", 0) == "200");
  CHECK(answer("bytes=0-0", 0) == "200");
  CHECK(answer("bytes=-1", 0) == "bytes 0--1/0");
  CHECK(answer("bytes=-0", 0) == "bytes 0--1/0");
}

TEST_CASE("Byteranges: the reference's body layout and length") {
  // Reference, `Range: bytes=0-0,2-3` on "0123456789" (.txt): Content-Length 345 with a
  // 60-character boundary.
  std::string b(60, 'b');
  envd::rest::Byteranges br(b, "text/plain; charset=utf-8", 10, {{0, 1}, {2, 2}});
  CHECK(br.content_type() == "multipart/byteranges; boundary=" + b);
  CHECK(br.part_header(0) ==
        "--" + b + "\r\nContent-Range: bytes 0-0/10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
  CHECK(br.part_header(1) ==
        "\r\n--" + b + "\r\nContent-Range: bytes 2-3/10\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n");
  CHECK(br.closing() == "\r\n--" + b + "--\r\n");
  std::string body = br.part_header(0) + "0" + br.part_header(1) + "23" + br.closing();
  CHECK(body.size() == 345);
  CHECK(br.content_length() == 345);
  envd::rest::Byteranges bare(b, "", 10, {{0, 5}, {5, 5}});
  CHECK(bare.part_header(0) == "--" + b + "\r\nContent-Range: bytes 0-4/10\r\n\r\n");
  auto r1 = envd::rest::random_boundary(), r2 = envd::rest::random_boundary();
  CHECK(r1.size() == 60);
  CHECK(r1.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(r1 != r2);
}

TEST_CASE("if_range_allows: Go's checkIfRange") {
  using envd::rest::if_range_allows;
  const std::int64_t mtime = 784111777;  // Sun, 06 Nov 1994 08:49:37 GMT
  CHECK(if_range_allows("", "", mtime));
  CHECK(if_range_allows("Sun, 06 Nov 1994 08:49:37 GMT", "", mtime));
  CHECK_FALSE(if_range_allows("Sun, 06 Nov 1994 08:49:38 GMT", "", mtime));
  CHECK_FALSE(if_range_allows("not a date", "", mtime));
  CHECK(if_range_allows("\"abc\"", "\"abc\"", mtime));
  CHECK_FALSE(if_range_allows("\"abc\"", "", mtime));  // the reference has no ETag: never matches
  CHECK_FALSE(if_range_allows("\"abc\"", "\"abd\"", mtime));
  CHECK_FALSE(if_range_allows("W/\"abc\"", "W/\"abc\"", mtime));  // weak never matches strongly
  CHECK_FALSE(if_range_allows("\"abc\"", "W/\"abc\"", mtime));
  CHECK_FALSE(if_range_allows("W/\"abc\"", "\"abc\"", mtime));
}
