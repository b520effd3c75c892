#include "envd/http_date.h"

#include <doctest/doctest.h>

#include <ctime>

using envd::format_http_date;
using envd::parse_http_date;

TEST_CASE("format_http_date: IMF-fixdate") {
  CHECK(format_http_date(0) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(format_http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(format_http_date(951782400) == "Tue, 29 Feb 2000 00:00:00 GMT");
  CHECK(format_http_date(4102444799) == "Thu, 31 Dec 2099 23:59:59 GMT");
  CHECK(format_http_date(-1) == "Wed, 31 Dec 1969 23:59:59 GMT");
}

TEST_CASE("format_http_date agrees with gmtime over many instants") {
  for (std::int64_t t = -86400LL * 800; t < 86400LL * 365 * 140; t += 86400LL * 37 + 3671) {
    std::time_t tt = static_cast<std::time_t>(t);
    std::tm tm{};
    gmtime_r(&tt, &tm);
    char buf[64];
    std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    REQUIRE(format_http_date(t) == buf);
    REQUIRE(parse_http_date(buf) == t);
  }
}

TEST_CASE("http_date_now is a current IMF-fixdate") {
  auto now = parse_http_date(envd::http_date_now());
  REQUIRE(now);
  auto t = static_cast<std::int64_t>(std::time(nullptr));
  // time() reads the coarse clock, which may still show the previous second at a boundary.
  CHECK(*now <= t + 1);
  CHECK(*now >= t - 2);
}

TEST_CASE("parse_http_date: the three forms of Go's http.ParseTime") {
  CHECK(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == 784111777);
  CHECK(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT") == 784111777);
  CHECK(parse_http_date("Sun Nov  6 08:49:37 1994") == 784111777);
  CHECK(parse_http_date("Sun Nov 16 08:49:37 1994") == 784111777 + 10 * 86400);
  CHECK(parse_http_date("Sun Nov 6 08:49:37 1994") == 784111777);        // Go's _2 takes one digit too
  CHECK(parse_http_date("sun, 06 nov 1994 08:49:37 GMT") == 784111777);  // names fold case as Go
  CHECK(parse_http_date("Mon, 06 Nov 1994 08:49:37 GMT") == 784111777);  // weekday not checked (Go)
  CHECK(parse_http_date("Thursday, 01-Jan-70 00:00:00 UTC") == 0);
  CHECK(parse_http_date("Friday, 01-Jan-68 00:00:00 GMT") == 3092601600);  // 2068
  CHECK(parse_http_date("Friday, 01-Jan-69 00:00:00 PST") == -31536000);   // unknown zone: offset 0
}

TEST_CASE("parse_http_date: rejects what Go rejects") {
  CHECK_FALSE(parse_http_date(""));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"));   // IMF-fixdate says GMT
  CHECK_FALSE(parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT"));    // two digits
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT "));  // extra text
  CHECK_FALSE(parse_http_date(" Sun, 06 Nov 1994 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 31 Nov 1994 08:49:37 GMT"));  // day out of range
  CHECK_FALSE(parse_http_date("Sun, 29 Feb 1900 08:49:37 GMT"));
  CHECK(parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT") == 951782400);
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 24:00:00 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:60:00 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:60 GMT"));
  CHECK_FALSE(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date("Xyz, 06 Nov 1994 08:49:37 GMT"));
  CHECK_FALSE(parse_http_date("Sunday, 06-Nov-94 08:49:37 gmt"));
  CHECK_FALSE(parse_http_date("Sun Nov  6 08:49:37 94"));
  CHECK_FALSE(parse_http_date("1994-11-06T08:49:37Z"));
  CHECK_FALSE(parse_http_date("Sun, 06 Nov 1994 08:49:37"));
}
