#include "envd/rest/range.h"

#include <random>

#include "envd/http_date.h"

namespace envd::rest {
namespace {

std::string_view trim(std::string_view s) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits, no overflow.
bool parse_int64(std::string_view s, std::int64_t& out) {
  bool neg = false;
  if (!s.empty() && (s[0] == '+' || s[0] == '-')) {
    neg = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s.empty()) return false;
  std::uint64_t limit = neg ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1, n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    unsigned d = static_cast<unsigned>(c - '0');
    if (n > (limit - d) / 10) return false;
    n = n * 10 + d;
  }
  out = neg ? static_cast<std::int64_t>(0 - n) : static_cast<std::int64_t>(n);
  return true;
}

// An entity tag at the start of `s` (Go's scanETag): `"…"` or `W/"…"`; "" when there is none.
std::string_view scan_etag(std::string_view s, bool& weak) {
  s = trim(s);
  weak = false;
  std::size_t start = 0;
  if (s.substr(0, 2) == "W/") {
    weak = true;
    start = 2;
  }
  if (s.size() - start < 2 || s[start] != '"') return {};
  for (std::size_t i = start + 1; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == 0x21 || (c >= 0x23 && c <= 0x7E) || c >= 0x80) continue;
    if (c == '"') return s.substr(0, i + 1);
    return {};
  }
  return {};
}

}  // namespace

RangeDecision decide_range(std::string_view header, std::int64_t size) {
  RangeDecision d;
  if (header.empty()) return d;
  constexpr std::string_view kPrefix = "bytes=";
  if (header.substr(0, kPrefix.size()) != kPrefix) {
    d.outcome = RangeOutcome::invalid;
    return d;
  }
  header.remove_prefix(kPrefix.size());
  bool no_overlap = false;
  auto invalid = [&] {
    d.ranges.clear();
    d.outcome = RangeOutcome::invalid;
    return d;
  };
  while (true) {
    auto comma = header.find(',');
    std::string_view spec = trim(header.substr(0, comma));
    if (!spec.empty()) {
      auto dash = spec.find('-');
      if (dash == std::string_view::npos) return invalid();
      std::string_view first = trim(spec.substr(0, dash)), last = trim(spec.substr(dash + 1));
      ByteRange r;
      if (first.empty()) {
        // Suffix: the last N bytes.
        std::int64_t n;
        if (last.empty() || last[0] == '-' || !parse_int64(last, n) || n < 0) return invalid();
        if (n > size) n = size;
        r.start = size - n;
        r.length = size - r.start;
        d.ranges.push_back(r);
      } else {
        std::int64_t a;
        if (!parse_int64(first, a) || a < 0) return invalid();
        if (a >= size) {
          no_overlap = true;  // begins past the end: skipped
        } else {
          r.start = a;
          if (last.empty()) {
            r.length = size - a;
          } else {
            std::int64_t b;
            if (!parse_int64(last, b) || a > b) return invalid();
            if (b >= size) b = size - 1;
            r.length = b - a + 1;
          }
          d.ranges.push_back(r);
        }
      }
    }
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  if (no_overlap && d.ranges.empty()) {
    // An empty file ignores it (clients that always send a Range get a 200).
    d.outcome = size == 0 ? RangeOutcome::whole : RangeOutcome::no_overlap;
    return d;
  }
  std::int64_t total = 0;
  for (const auto& r : d.ranges) {
    total += r.length;
    if (total > size) break;
  }
  if (total > size || d.ranges.empty()) {
    d.ranges.clear();
    d.outcome = RangeOutcome::whole;
    return d;
  }
  d.outcome = RangeOutcome::partial;
  return d;
}

std::string content_range(const ByteRange& r, std::int64_t size) {
  return "bytes " + std::to_string(r.start) + "-" + std::to_string(r.start + r.length - 1) + "/" + std::to_string(size);
}

std::string unsatisfied_content_range(std::int64_t size) { return "bytes */" + std::to_string(size); }

bool if_range_allows(std::string_view if_range, std::string_view etag, std::int64_t mtime_seconds) {
  if (if_range.empty()) return true;
  bool weak = false;
  std::string_view tag = scan_etag(if_range, weak);
  if (!tag.empty()) {
    bool etag_weak = false;
    std::string_view ours = scan_etag(etag, etag_weak);
    return !weak && !etag_weak && !ours.empty() && ours == tag;
  }
  auto t = parse_http_date(if_range);
  return t && *t == mtime_seconds;
}

Byteranges::Byteranges(std::string boundary, std::string content_type, std::int64_t size, std::vector<ByteRange> ranges)
    : boundary_(std::move(boundary)), content_type_(std::move(content_type)), size_(size), ranges_(std::move(ranges)) {}

std::string Byteranges::content_type() const { return "multipart/byteranges; boundary=" + boundary_; }

std::string Byteranges::part_header(std::size_t i) const {
  std::string h = i > 0 ? "\r\n--" : "--";
  h += boundary_;
  h += "\r\nContent-Range: ";
  h += content_range(ranges_[i], size_);
  h += "\r\n";
  if (!content_type_.empty()) {
    h += "Content-Type: ";
    h += content_type_;
    h += "\r\n";
  }
  h += "\r\n";
  return h;
}

std::string Byteranges::closing() const { return "\r\n--" + boundary_ + "--\r\n"; }

std::int64_t Byteranges::content_length() const {
  std::int64_t n = static_cast<std::int64_t>(closing().size());
  for (std::size_t i = 0; i < ranges_.size(); ++i) {
    n += static_cast<std::int64_t>(part_header(i).size()) + ranges_[i].length;
  }
  return n;
}

std::string random_boundary() {
  static const char* hex = "0123456789abcdef";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string b;
  b.reserve(60);
  for (int i = 0; i < 30; ++i) {
    auto byte = static_cast<unsigned>(rng() & 0xFF);
    b += {hex[byte >> 4], hex[byte & 15]};
  }
  return b;
}

}  // namespace envd::rest
