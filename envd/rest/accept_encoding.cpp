#include "envd/rest/accept_encoding.h"
#include "envd/ascii.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <string>

namespace envd::rest {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Go's strconv.ParseFloat(v, 64), closely enough for q-values: nullopt on a syntax error or an
// overflow (ErrRange); NaN and infinities parse.
std::optional<double> go_parse_float(std::string_view v) {
  if (v.empty() || v.front() == ' ' || v.front() == '\t' || v.front() == '\n' || v.front() == '\v' ||
      v.front() == '\f' || v.front() == '\r')
    return std::nullopt;
  for (char c : v) {
    if (c == 'x' || c == 'X' || c == '(' || c == '_') return std::nullopt;  // no hex floats, no nan(...)
  }
  std::string s(v);
  errno = 0;
  char* end = nullptr;
  double d = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  if (errno == ERANGE && std::isinf(d)) return std::nullopt;
  return d;
}

}  // namespace

AcceptEncoding parse_accept_encoding(std::string_view header) {
  AcceptEncoding r;
  enum class Name { identity, gzip, star };
  std::optional<Name> best;
  double best_q = 0;
  bool identity_listed = false, identity_zero = false, star_zero = false;
  while (true) {
    auto comma = header.find(',');
    std::string_view entry = header.substr(0, comma);
    auto semi = entry.find(';');
    std::string_view name = trim(entry.substr(0, semi));
    double q = 1;
    while (semi != std::string_view::npos) {
      entry.remove_prefix(semi + 1);
      semi = entry.find(';');
      std::string_view param = trim(entry.substr(0, semi));
      auto eq = param.find('=');
      if (eq == std::string_view::npos || !ascii::iequals(param.substr(0, eq), "q")) continue;
      auto v = go_parse_float(param.substr(eq + 1));
      q = v && !(*v < 0) ? *v : 1;
    }
    std::optional<Name> n;
    if (ascii::iequals(name, "identity")) {
      n = Name::identity;
      identity_listed = true;
      if (q == 0) identity_zero = true;
    } else if (ascii::iequals(name, "gzip")) {
      n = Name::gzip;
    } else if (name == "*") {
      n = Name::star;
      if (q == 0) star_zero = true;
    }
    // q == 0 rejects; otherwise a later entry must beat the best one (NaN q never stays the best).
    if (n && q != 0 && (!best || !(q <= best_q))) {
      best = n;
      best_q = q;
    }
    if (comma == std::string_view::npos) break;
    header.remove_prefix(comma + 1);
  }
  r.identity_rejected = identity_zero || (star_zero && !identity_listed);
  if (!best) {
    if (!r.identity_rejected) r.chosen = ContentCoding::identity;
  } else if (*best == Name::gzip) {
    r.chosen = ContentCoding::gzip;
  } else if (*best == Name::identity) {
    r.chosen = ContentCoding::identity;
  } else {
    r.chosen = r.identity_rejected ? ContentCoding::gzip : ContentCoding::identity;
  }
  return r;
}

DownloadEncoding negotiate_download_encoding(std::string_view accept_encoding, bool range_or_conditional) {
  DownloadEncoding d;
  auto ae = parse_accept_encoding(accept_encoding);
  if (!ae.chosen) {
    d.status = 406;
    d.error = kNoAcceptableEncoding;
    return d;
  }
  d.coding = *ae.chosen;
  if (range_or_conditional && d.coding != ContentCoding::identity) {
    if (ae.identity_rejected) {
      d.status = 406;
      d.error = kIdentityNotAcceptable;
      return d;
    }
    d.coding = ContentCoding::identity;
  }
  return d;
}

}  // namespace envd::rest
