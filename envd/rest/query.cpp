#include "envd/rest/query.h"

#include <cstdio>

namespace envd::rest {
namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Length of the valid UTF-8 sequence at s[i] (0 when invalid), and its code point.
std::size_t utf8_sequence(std::string_view s, std::size_t i, std::uint32_t& cp) {
  auto b = static_cast<unsigned char>(s[i]);
  std::size_t n;
  std::uint32_t min;
  if (b < 0x80) {
    cp = b;
    return 1;
  } else if ((b & 0xE0) == 0xC0) {
    n = 2, cp = b & 0x1F, min = 0x80;
  } else if ((b & 0xF0) == 0xE0) {
    n = 3, cp = b & 0x0F, min = 0x800;
  } else if ((b & 0xF8) == 0xF0) {
    n = 4, cp = b & 0x07, min = 0x10000;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  for (std::size_t k = 1; k < n; ++k) {
    auto c = static_cast<unsigned char>(s[i + k]);
    if ((c & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (c & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

}  // namespace

std::optional<std::string> query_unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '+') {
      out.push_back(' ');
    } else if (c == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      int hi = hex_value(s[i + 1]), lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(c);
    }
  }
  return out;
}

Query Query::parse(std::string_view raw) {
  Query q;
  while (!raw.empty()) {
    auto amp = raw.find('&');
    std::string_view pair = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view{} : raw.substr(amp + 1);
    if (pair.find(';') != std::string_view::npos) {
      q.had_error_ = true;
      continue;
    }
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    std::string_view k = pair.substr(0, eq);
    std::string_view v = eq == std::string_view::npos ? std::string_view{} : pair.substr(eq + 1);
    auto key = query_unescape(k);
    auto value = key ? query_unescape(v) : std::nullopt;
    if (!key || !value) {
      q.had_error_ = true;
      continue;
    }
    auto it = q.map_.find(*key);
    if (it == q.map_.end()) it = q.map_.emplace(std::move(*key), std::vector<std::string>{}).first;
    it->second.push_back(std::move(*value));
  }
  return q;
}

const std::vector<std::string>& Query::values(std::string_view key) const {
  static const std::vector<std::string> none;
  auto it = map_.find(key);
  return it == map_.end() ? none : it->second;
}

SingleValue single_value(const Query& q, std::string_view name) {
  SingleValue r;
  const auto& v = q.values(name);
  if (v.empty()) return r;
  if (v.size() > 1) {
    r.error = "Invalid format for parameter " + std::string(name) + ": multiple values for single value parameter '" +
              std::string(name) + "'";
    return r;
  }
  r.value = v.front();
  return r;
}

SingleInt single_int64(const Query& q, std::string_view name) {
  SingleInt r;
  auto s = single_value(q, name);
  if (!s.error.empty()) {
    r.error = std::move(s.error);
    return r;
  }
  if (!s.value) return r;
  const std::string& v = *s.value;
  auto fail = [&](std::string_view why) {
    r.error = "Invalid format for parameter " + std::string(name) +
              ": error binding string parameter: strconv.ParseInt: parsing " + go_quote(v) + ": " + std::string(why);
    return r;
  };
  std::size_t i = 0;
  bool negative = false;
  if (i < v.size() && (v[i] == '+' || v[i] == '-')) negative = v[i++] == '-';
  if (i == v.size()) return fail("invalid syntax");
  // Magnitude up to 2^63 (the negative limit); syntax is checked over the whole string before range.
  std::uint64_t limit = negative ? std::uint64_t{1} << 63 : (std::uint64_t{1} << 63) - 1;
  std::uint64_t n = 0;
  bool overflow = false;
  for (; i < v.size(); ++i) {
    if (v[i] < '0' || v[i] > '9') return fail("invalid syntax");
    if (overflow) continue;
    unsigned d = static_cast<unsigned>(v[i] - '0');
    if (n > (limit - d) / 10) {
      overflow = true;
      continue;
    }
    n = n * 10 + d;
  }
  if (overflow) return fail("value out of range");
  r.value = negative ? static_cast<std::int64_t>(0 - n) : static_cast<std::int64_t>(n);
  return r;
}

std::string go_quote(std::string_view s) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (std::size_t i = 0; i < s.size();) {
    std::uint32_t cp = 0;
    std::size_t n = utf8_sequence(s, i, cp);
    if (n == 0) {
      auto b = static_cast<unsigned char>(s[i]);
      out += "\\x";
      out.push_back(hex[b >> 4]);
      out.push_back(hex[b & 15]);
      ++i;
      continue;
    }
    if (n > 1) {
      // Printable non-ASCII is kept; the C1 controls and a few format characters Go escapes.
      if (cp < 0xA0 || cp == 0xAD || cp == 0xFEFF || (cp >= 0x2028 && cp <= 0x2029)) {
        char buf[16];
        if (cp <= 0xFFFF) {
          std::snprintf(buf, sizeof buf, "\\u%04x", cp);
        } else {
          std::snprintf(buf, sizeof buf, "\\U%08x", cp);
        }
        out += buf;
      } else {
        out.append(s.substr(i, n));
      }
      i += n;
      continue;
    }
    char c = s[i++];
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\a': out += "\\a"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\v': out += "\\v"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
          out += "\\x";
          out.push_back(hex[static_cast<unsigned char>(c) >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(c);
        }
    }
  }
  out += '"';
  return out;
}

}  // namespace envd::rest
