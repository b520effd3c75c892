#include "envd/rest/media_type.h"
#include "envd/ascii.h"

#include <vector>

namespace envd::rest {
namespace {

// Go's unicode.IsSpace over ASCII, and the two non-ASCII spaces Go also trims that we meet as bytes
// (U+0085, U+00A0) are left alone: headers are ASCII in practice.
bool space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'; }

std::string_view trim_left(std::string_view s) {
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  return s;
}

std::string_view consume_token(std::string_view& v) {
  std::size_t n = 0;
  while (n < v.size() && is_token_char(v[n])) ++n;
  auto t = v.substr(0, n);
  v.remove_prefix(n);
  return t;
}

// A token or a quoted-string; nullopt on an unterminated quote or a bare CR/LF inside it.
std::optional<std::string> consume_value(std::string_view& v) {
  if (v.empty()) return std::nullopt;
  if (v[0] != '"') {
    auto t = consume_token(v);
    if (t.empty()) return std::nullopt;
    return std::string(t);
  }
  std::string out;
  for (std::size_t i = 1; i < v.size(); ++i) {
    char c = v[i];
    if (c == '"') {
      v.remove_prefix(i + 1);
      return out;
    }
    if (c == '\\' && i + 1 < v.size() && is_tspecial(v[i + 1])) {
      out.push_back(v[++i]);
      continue;
    }
    if (c == '\r' || c == '\n') return std::nullopt;
    out.push_back(c);
  }
  return std::nullopt;
}

int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> percent_unescape(std::string_view s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size() || hex(s[i + 1]) < 0 || hex(s[i + 2]) < 0) return std::nullopt;
    out.push_back(static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2])));
    i += 2;
  }
  return out;
}

// RFC 2231 `charset'lang'pct-encoded`: utf-8 or us-ascii only.
std::optional<std::string> decode_2231(std::string_view v) {
  auto q1 = v.find('\'');
  if (q1 == std::string_view::npos) return std::nullopt;
  auto q2 = v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return std::nullopt;
  std::string charset = ascii::lower(v.substr(0, q1));
  if (charset != "us-ascii" && charset != "utf-8") return std::nullopt;
  return percent_unescape(v.substr(q2 + 1));
}

bool needs_quoting(std::string_view s) {
  if (s.empty()) return true;
  for (char c : s) {
    if (!is_token_char(c)) return true;
  }
  return false;
}

}  // namespace

bool is_tspecial(char c) {
  switch (c) {
    case '(':
    case ')':
    case '<':
    case '>':
    case '@':
    case ',':
    case ';':
    case ':':
    case '\\':
    case '"':
    case '/':
    case '[':
    case ']':
    case '?':
    case '=': return true;
    default: return false;
  }
}

bool is_token_char(char c) {
  auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && !is_tspecial(c);
}

std::optional<MediaType> parse_media_type(std::string_view v) {
  MediaType mt;
  auto semi = v.find(';');
  std::string_view base = v.substr(0, semi);
  while (!base.empty() && space(base.front())) base.remove_prefix(1);
  while (!base.empty() && space(base.back())) base.remove_suffix(1);
  {
    std::string_view b = base;
    auto major = consume_token(b);
    if (major.empty()) return std::nullopt;
    if (!b.empty()) {
      if (b[0] != '/') return std::nullopt;
      b.remove_prefix(1);
      auto minor = consume_token(b);
      if (minor.empty() || !b.empty()) return std::nullopt;
    }
  }
  mt.type = ascii::lower(base);
  std::string_view rest = semi == std::string_view::npos ? std::string_view{} : v.substr(semi);
  // key → value for plain parameters; base name → (key → value) for RFC 2231 ones.
  std::map<std::string, std::map<std::string, std::string>> continuation;
  while (!rest.empty()) {
    rest = trim_left(rest);
    if (rest.empty()) break;
    // consumeMediaParam: ';' key '=' value
    std::string_view p = rest;
    bool ok = false;
    std::string key, value;
    if (p[0] == ';') {
      p.remove_prefix(1);
      p = trim_left(p);
      key = ascii::lower(consume_token(p));
      if (!key.empty()) {
        p = trim_left(p);
        if (!p.empty() && p[0] == '=') {
          p.remove_prefix(1);
          p = trim_left(p);
          if (auto val = consume_value(p)) {
            value = std::move(*val);
            ok = true;
          }
        }
      }
    }
    if (!ok) {
      // Only trailing semicolons are not an error.
      std::string_view t = rest;
      while (!t.empty() && space(t.back())) t.remove_suffix(1);
      if (t == ";") break;
      return std::nullopt;
    }
    auto star = key.find('*');
    auto& pmap = star == std::string::npos ? mt.params : continuation[key.substr(0, star)];
    if (auto it = pmap.find(key); it != pmap.end() && it->second != value) return std::nullopt;  // duplicate
    pmap[key] = std::move(value);
    rest = p;
  }
  for (auto& [name, pieces] : continuation) {
    if (auto it = pieces.find(name + "*"); it != pieces.end()) {
      if (auto d = decode_2231(it->second)) mt.params[name] = std::move(*d);
      continue;
    }
    std::string joined;
    bool valid = false;
    for (int n = 0;; ++n) {
      std::string simple = name + "*" + std::to_string(n);
      if (auto it = pieces.find(simple); it != pieces.end()) {
        valid = true;
        joined += it->second;
        continue;
      }
      auto enc = pieces.find(simple + "*");
      if (enc == pieces.end()) break;
      valid = true;
      if (n == 0) {
        if (auto d = decode_2231(enc->second)) joined += *d;
      } else if (auto d = percent_unescape(enc->second)) {
        joined += *d;
      }
    }
    if (valid) mt.params[name] = std::move(joined);
  }
  return mt;
}

std::string format_media_type(std::string_view type, const std::map<std::string, std::string>& params) {
  std::string out;
  auto slash = type.find('/');
  if (slash == std::string_view::npos) {
    if (type.empty() || needs_quoting(type)) return "";
    out = ascii::lower(type);
  } else {
    auto major = type.substr(0, slash), sub = type.substr(slash + 1);
    if (major.empty() || sub.empty() || needs_quoting(major) || needs_quoting(sub)) return "";
    out = ascii::lower(major) + "/" + ascii::lower(sub);
  }
  for (const auto& [k, v] : params) {  // std::map: sorted keys, as Go sorts them
    if (k.empty() || needs_quoting(k)) return "";
    out += "; ";
    out += ascii::lower(k);
    bool ascii = true;
    for (char c : v) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 && c != '\t') ascii = false;  // Go: needsEncoding is any byte outside ' '..'~' but tab
      if (u >= 0x7f) ascii = false;
    }
    if (!ascii) {
      // RFC 2231: key*=utf-8''pct
      out += "*=utf-8''";
      static const char* hexd = "0123456789ABCDEF";
      for (char c : v) {
        auto u = static_cast<unsigned char>(c);
        if (u <= ' ' || u >= 0x7f || c == '*' || c == '\'' || c == '%' || is_tspecial(c)) {
          out += '%';
          out += hexd[u >> 4];
          out += hexd[u & 15];
        } else {
          out += c;
        }
      }
      continue;
    }
    out += '=';
    if (!needs_quoting(v)) {
      out += v;
      continue;
    }
    out += '"';
    for (char c : v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out;
}

}  // namespace envd::rest
