#pragma once
// `Range: bytes=…` as Go's http.ServeContent answers it (GET /files, contract §6.5), and the
// pieces of a multipart/byteranges body. Observed on the reference envd (a 10-byte file):
// `bytes=0-3` → 206 `bytes 0-3/10`; `-3` → 7-9; `8-20` → 8-9; `-0` → 206 `bytes 10-9/10` and an
// empty body; `10-` → 416 `Content-Range: bytes */10` "invalid range: failed to overlap";
// `5-2`, `1`, `-`, `items=0-1`, overflowing numbers → 416 "invalid range" (no Content-Range);
// ranges whose lengths add up to more than the size (`0-,1-`) → ignored, 200 with the whole file;
// an empty file ignores a non-overlapping range (200) but answers `-1` with 206 `bytes 0--1/0`.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace envd::rest {

struct ByteRange {
  std::int64_t start = 0;
  std::int64_t length = 0;
};

enum class RangeOutcome {
  whole,       // no (usable) Range: 200 with the whole content
  partial,     // 206: one range (Content-Range) or several (multipart/byteranges)
  no_overlap,  // 416, Content-Range: bytes */<size>, body kRangeNoOverlap
  invalid,     // 416, body kRangeInvalid
};

struct RangeDecision {
  RangeOutcome outcome = RangeOutcome::whole;
  std::vector<ByteRange> ranges;  // for `partial`
};

// The fuzzer's entry point. `header` is the Range value ("" when absent).
RangeDecision decide_range(std::string_view header, std::int64_t size);

inline constexpr std::string_view kRangeNoOverlap = "invalid range: failed to overlap";
inline constexpr std::string_view kRangeInvalid = "invalid range";

// "bytes <first>-<last>/<size>" (last = start + length - 1, which may be below start as Go's is).
std::string content_range(const ByteRange& r, std::int64_t size);
// "bytes */<size>"
std::string unsatisfied_content_range(std::int64_t size);

// If-Range (Go's checkIfRange): true when the Range header should be honoured. `if_range` is the
// header value ("" when absent: true); an entity tag must strongly match `etag` (our response's
// ETag, "" when none); otherwise it must be an HTTP date equal to `mtime_seconds`.
bool if_range_allows(std::string_view if_range, std::string_view etag, std::int64_t mtime_seconds);

// A multipart/byteranges body, as Go's ServeContent writes it:
//   "--B\r\nContent-Range: bytes 0-0/10\r\nContent-Type: <ct>\r\n\r\n" <data>
//   "\r\n--B\r\n…" for the next parts, then "\r\n--B--\r\n".
// The Content-Type part header is left out when `content_type` is empty.
class Byteranges {
 public:
  Byteranges(std::string boundary, std::string content_type, std::int64_t size, std::vector<ByteRange> ranges);
  // "multipart/byteranges; boundary=<B>"
  std::string content_type() const;
  // The exact body length (headers, data and delimiters).
  std::int64_t content_length() const;
  std::size_t parts() const { return ranges_.size(); }
  const ByteRange& range(std::size_t i) const { return ranges_[i]; }
  // What comes before part i's data (the CRLF ending the previous part included).
  std::string part_header(std::size_t i) const;
  // What comes after the last part's data.
  std::string closing() const;

 private:
  std::string boundary_, content_type_;
  std::int64_t size_;
  std::vector<ByteRange> ranges_;
};

// 60 lower-case hex characters from 30 random bytes (Go's multipart boundary shape).
std::string random_boundary();

}  // namespace envd::rest
