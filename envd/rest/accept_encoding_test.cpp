#include "envd/rest/accept_encoding.h"

#include <doctest/doctest.h>

#include <string>

using envd::rest::ContentCoding;

namespace {
// "identity", "gzip" or "406", as the reference envd 0.6.13 answered each header (GET /files).
std::string pick(std::string_view header) {
  auto r = envd::rest::parse_accept_encoding(header);
  if (!r.chosen) return "406";
  return *r.chosen == ContentCoding::gzip ? "gzip" : "identity";
}
}  // namespace

TEST_CASE("Accept-Encoding: what the reference envd chose") {
  struct Case {
    const char* header;
    const char* want;
  };
  const Case cases[] = {
      {"", "identity"},
      {"gzip", "gzip"},
      {"GZIP", "gzip"},
      {"gzip;q=0", "identity"},
      {"identity;q=0", "406"},
      {"Identity;q=0", "406"},
      {"identity;q=0, gzip", "gzip"},
      {"*;q=0", "406"},
      {"*;q=0, identity", "identity"},
      {"*", "identity"},
      {"*, identity;q=0", "gzip"},
      {"identity;q=0,*", "gzip"},
      {"br", "identity"},
      {"x-gzip", "identity"},
      {"br, identity;q=0", "406"},
      {"identity;q=0, br", "406"},
      {"br;q=1, *;q=0", "406"},
      {"gzip;q=0.5, identity;q=0.9", "identity"},
      {"gzip;q=0.9, identity;q=0.5", "gzip"},
      {"gzip;q=0.5, identity;q=0.5", "gzip"},
      {"identity;q=0.5, gzip;q=0.5", "identity"},
      {"identity, gzip", "identity"},
      {"*;q=0.5, gzip;q=0.5", "identity"},
      {"gzip;q=0.5, *;q=0.5", "gzip"},
      {"*;q=0.5, gzip;q=0.4", "identity"},
      {"*;q=0.5, identity;q=0.4, gzip;q=0.45", "identity"},
      {"identity;q=0.5, *;q=0.9", "identity"},
      {"identity;q=0.1, gzip;q=0, *;q=0.5", "identity"},
      {"*, gzip;q=0", "identity"},
      {"gzip;q=0, *", "identity"},
      {"*;q=0, gzip;q=0", "406"},
      {"identity;q=0, gzip;q=0", "406"},
      {"identity;q=0, *;q=0", "406"},
      {"*, identity;q=0, gzip;q=0", "gzip"},
      {"*, identity;q=0, identity;q=1", "gzip"},
      {"identity;q=0, identity;q=1", "identity"},
      {"identity;q=1, identity;q=0", "identity"},
      {"gzip, gzip;q=0", "gzip"},
      {"gzip;q=0, gzip", "gzip"},
      {"gzip ; q=1.0", "gzip"},
      {"gzip; q=0", "identity"},
      {" gzip;q=0 ", "identity"},
      {"gzip ;q=0", "identity"},
      {"gzip;;q=0", "identity"},
      {"gzip;Q=0", "identity"},
      {"gzip;q =0", "gzip"},  // key "q " is not q
      {"gzip;q= 0", "gzip"},  // " 0" does not parse: q=1
      {"gzip;q=abc", "gzip"},
      {"gzip;q=", "gzip"},
      {"gzip;q", "gzip"},
      {"gzip;q=\"0\"", "gzip"},
      {"gzip;q=0x0", "gzip"},
      {"gzip;q=0.", "identity"},
      {"gzip;q=1.5", "gzip"},
      {"identity;q=2, gzip", "identity"},  // q above 1 is kept
      {"gzip;q=2, identity", "gzip"},
      {"gzip;q=-1", "gzip"},  // negative: q=1
      {"gzip;q=-1, identity;q=0", "gzip"},
      {"gzip;q=+0.5, identity;q=0.6", "identity"},
      {"gzip;q=1e-1, identity;q=0.5", "identity"},
      {"gzip;q=0.00001, identity;q=0.000001", "gzip"},
      {"gzip;q=0.001", "gzip"},
      {"gzip;q=NaN", "gzip"},
      {"gzip;q=NaN, identity;q=0.5", "identity"},
      {"gzip;q=inf, identity;q=0.5", "gzip"},
      {"gzip;q=1e400, identity;q=2", "identity"},  // overflow is a parse error: q=1
      {"gzip;foo=bar;q=0", "identity"},
      {"gzip;q=0;foo=bar", "identity"},
      {"gzip;q=0.5;q=0", "identity"},  // the last q counts
      {", ,gzip", "gzip"},
      {"gzip;q=0.5, br;q=0.9, identity;q=0.6", "identity"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.header);
    CHECK(pick(c.header) == c.want);
  }
}

TEST_CASE("negotiate_download_encoding: 406 texts and the Range/conditional rule") {
  using envd::rest::negotiate_download_encoding;
  auto d = negotiate_download_encoding("identity;q=0", false);
  CHECK(d.status == 406);
  CHECK(d.error == "error parsing Accept-Encoding: no acceptable encoding found, supported: [gzip]");
  d = negotiate_download_encoding("identity;q=0", true);  // the first check wins
  CHECK(d.error == "error parsing Accept-Encoding: no acceptable encoding found, supported: [gzip]");
  d = negotiate_download_encoding("identity;q=0, gzip", true);
  CHECK(d.status == 406);
  CHECK(d.error == "identity encoding not acceptable for Range or conditional request");
  d = negotiate_download_encoding("identity;q=0, gzip", false);
  CHECK(d.status == 200);
  CHECK(d.coding == ContentCoding::gzip);
  d = negotiate_download_encoding("gzip", true);  // Range → 206 identity in the reference
  CHECK(d.status == 200);
  CHECK(d.coding == ContentCoding::identity);
  d = negotiate_download_encoding("gzip", false);
  CHECK(d.coding == ContentCoding::gzip);
  d = negotiate_download_encoding("", true);
  CHECK(d.status == 200);
  CHECK(d.coding == ContentCoding::identity);
}
