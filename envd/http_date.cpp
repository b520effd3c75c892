#include "envd/http_date.h"

#include <array>
#include <cstdio>
#include <ctime>

namespace envd {
namespace {

constexpr std::array<std::string_view, 7> kShortDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDays = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                       "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

bool leap(std::int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; }

// A cursor over the input with Go time.Parse's element matchers.
struct Cursor {
  std::string_view s;

  bool literal(std::string_view lit) {
    if (s.substr(0, lit.size()) != lit) return false;
    s.remove_prefix(lit.size());
    return true;
  }
  // Case-insensitive (ASCII) match of one of the names; returns its index.
  template <std::size_t N>
  std::optional<unsigned> name(const std::array<std::string_view, N>& names) {
    for (unsigned i = 0; i < N; ++i) {
      std::string_view n = names[i];
      if (s.size() < n.size()) continue;
      bool eq = true;
      for (std::size_t k = 0; k < n.size() && eq; ++k) eq = lower(s[k]) == lower(n[k]);
      if (eq) {
        s.remove_prefix(n.size());
        return i;
      }
    }
    return std::nullopt;
  }
  // Exactly `n` digits.
  std::optional<unsigned> digits(std::size_t n) {
    if (s.size() < n) return std::nullopt;
    unsigned v = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (s[i] < '0' || s[i] > '9') return std::nullopt;
      v = v * 10 + static_cast<unsigned>(s[i] - '0');
    }
    s.remove_prefix(n);
    return v;
  }
  // Go's "_2": an optional leading space, then one or two digits.
  std::optional<unsigned> space_padded_day() {
    if (!s.empty() && s[0] == ' ') s.remove_prefix(1);
    auto one = digits(1);
    if (!one) return std::nullopt;
    if (!s.empty() && s[0] >= '0' && s[0] <= '9') return *one * 10 + *digits(1);
    return one;
  }
};

std::optional<std::int64_t> assemble(std::int64_t y, unsigned mon, unsigned d, unsigned h, unsigned mi, unsigned sec) {
  if (d < 1 || d > days_in_month(y, mon) || h > 23 || mi > 59 || sec > 59) return std::nullopt;
  return days_from_civil(y, mon, d) * 86400 + h * 3600 + mi * 60 + sec;
}

// "15:04:05"
bool clock(Cursor& c, unsigned& h, unsigned& mi, unsigned& sec) {
  auto hh = c.digits(2);
  if (!hh || !c.literal(":")) return false;
  auto mm = c.digits(2);
  if (!mm || !c.literal(":")) return false;
  auto ss = c.digits(2);
  if (!ss) return false;
  h = *hh, mi = *mm, sec = *ss;
  return true;
}

// "Mon, 02 Jan 2006 15:04:05 GMT"
std::optional<std::int64_t> parse_imf(std::string_view s) {
  Cursor c{s};
  unsigned h, mi, sec;
  if (!c.name(kShortDays) || !c.literal(", ")) return std::nullopt;
  auto d = c.digits(2);
  if (!d || !c.literal(" ")) return std::nullopt;
  auto mon = c.name(kMonths);
  if (!mon || !c.literal(" ")) return std::nullopt;
  auto y = c.digits(4);
  if (!y || !c.literal(" ") || !clock(c, h, mi, sec) || !c.literal(" GMT") || !c.s.empty()) return std::nullopt;
  return assemble(*y, *mon + 1, *d, h, mi, sec);
}

// "Monday, 02-Jan-06 15:04:05 MST" (two-digit years: 69–99 → 19xx, else 20xx, as Go)
std::optional<std::int64_t> parse_rfc850(std::string_view s) {
  Cursor c{s};
  unsigned h, mi, sec;
  if (!c.name(kLongDays) || !c.literal(", ")) return std::nullopt;
  auto d = c.digits(2);
  if (!d || !c.literal("-")) return std::nullopt;
  auto mon = c.name(kMonths);
  if (!mon || !c.literal("-")) return std::nullopt;
  auto yy = c.digits(2);
  if (!yy || !c.literal(" ") || !clock(c, h, mi, sec) || !c.literal(" ")) return std::nullopt;
  // Go's zone abbreviation: three upper-case letters (or four ending in T); an unknown one means
  // a zero offset, which is what every abbreviation means to envd (its zone is UTC).
  auto upper = [](char ch) { return ch >= 'A' && ch <= 'Z'; };
  std::string_view z = c.s;
  bool zone_ok = (z.size() == 3 && upper(z[0]) && upper(z[1]) && upper(z[2])) ||
                 (z.size() == 4 && upper(z[0]) && upper(z[1]) && upper(z[2]) && z[3] == 'T');
  if (!zone_ok) return std::nullopt;
  return assemble(*yy >= 69 ? 1900 + *yy : 2000 + *yy, *mon + 1, *d, h, mi, sec);
}

// "Mon Jan _2 15:04:05 2006"
std::optional<std::int64_t> parse_asctime(std::string_view s) {
  Cursor c{s};
  unsigned h, mi, sec;
  if (!c.name(kShortDays) || !c.literal(" ")) return std::nullopt;
  auto mon = c.name(kMonths);
  if (!mon || !c.literal(" ")) return std::nullopt;
  auto d = c.space_padded_day();
  if (!d || !c.literal(" ") || !clock(c, h, mi, sec) || !c.literal(" ")) return std::nullopt;
  auto y = c.digits(4);
  if (!y || !c.s.empty()) return std::nullopt;
  return assemble(*y, *mon + 1, *d, h, mi, sec);
}

}  // namespace

std::string format_http_date(std::int64_t t) {
  std::int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  std::int64_t secs = t - days * 86400;
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  auto wd = static_cast<std::size_t>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s, %02u %s %04lld %02d:%02d:%02d GMT", kShortDays[wd].data(), d,
                kMonths[m - 1].data(), static_cast<long long>(y), static_cast<int>(secs / 3600),
                static_cast<int>(secs / 60 % 60), static_cast<int>(secs % 60));
  return buf;
}

std::string_view http_date_now() {
  thread_local std::int64_t cached_second = -1;
  thread_local std::string cached;
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  if (ts.tv_sec != cached_second) {
    cached = format_http_date(ts.tv_sec);
    cached_second = ts.tv_sec;
  }
  return cached;
}

std::optional<std::int64_t> parse_http_date(std::string_view s) {
  if (auto t = parse_imf(s)) return t;
  if (auto t = parse_rfc850(s)) return t;
  return parse_asctime(s);
}

}  // namespace envd
