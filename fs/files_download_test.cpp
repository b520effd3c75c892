#include "fs/files_download.h"

#include <doctest/doctest.h>

using namespace envd;
using namespace envd::fs;

namespace {

http::RequestHead get(http::Headers headers) {
  http::RequestHead h;
  h.method = "GET";
  h.path = "/files";
  h.headers = std::move(headers);
  return h;
}

// Wed, 02 Jan 2030 03:04:05 GMT
constexpr std::int64_t kMtime = 1893553445;
const std::string kTag = "\"a-1\"";

}  // namespace

TEST_CASE("preconditions: nothing asked → proceed, no range") {
  auto o = check_preconditions(get({}), kTag, kMtime);
  CHECK(o.result == Precondition::proceed);
  CHECK_FALSE(o.use_range);
}

TEST_CASE("preconditions: If-Match and If-Unmodified-Since → 412 on mismatch") {
  CHECK(check_preconditions(get({{"if-match", "\"b\""}}), kTag, kMtime).result == Precondition::failed);
  CHECK(check_preconditions(get({{"if-match", "\"b\", \"a-1\""}}), kTag, kMtime).result == Precondition::proceed);
  CHECK(check_preconditions(get({{"if-match", "W/\"a-1\""}}), kTag, kMtime).result == Precondition::failed);
  CHECK(check_preconditions(get({{"if-unmodified-since", "Wed, 02 Jan 2030 03:04:04 GMT"}}), kTag, kMtime).result ==
        Precondition::failed);
  CHECK(check_preconditions(get({{"if-unmodified-since", "Wed, 02 Jan 2030 03:04:05 GMT"}}), kTag, kMtime).result ==
        Precondition::proceed);
  // An unparsable date is ignored; If-Match wins over If-Unmodified-Since.
  CHECK(check_preconditions(get({{"if-unmodified-since", "yesterday"}}), kTag, kMtime).result == Precondition::proceed);
  CHECK(check_preconditions(get({{"if-match", "*"}, {"if-unmodified-since", "Wed, 02 Jan 2030 03:04:04 GMT"}}), kTag,
                            kMtime)
            .result == Precondition::proceed);
}

TEST_CASE("preconditions: If-None-Match (weak) and If-Modified-Since → 304") {
  CHECK(check_preconditions(get({{"if-none-match", "W/\"a-1\""}}), kTag, kMtime).result == Precondition::not_modified);
  CHECK(check_preconditions(get({{"if-none-match", "*"}}), kTag, kMtime).result == Precondition::not_modified);
  CHECK(check_preconditions(get({{"if-none-match", "\"b\""}}), kTag, kMtime).result == Precondition::proceed);
  CHECK(check_preconditions(get({{"if-modified-since", "Wed, 02 Jan 2030 03:04:05 GMT"}}), kTag, kMtime).result ==
        Precondition::not_modified);
  CHECK(check_preconditions(get({{"if-modified-since", "Wednesday, 02-Jan-30 03:04:05 GMT"}}), kTag, kMtime).result ==
        Precondition::not_modified);
  CHECK(check_preconditions(get({{"if-modified-since", "Wed, 02 Jan 2030 03:04:04 GMT"}}), kTag, kMtime).result ==
        Precondition::proceed);
  // If-None-Match present and not matching: If-Modified-Since is not looked at.
  CHECK(check_preconditions(get({{"if-none-match", "\"b\""}, {"if-modified-since", "Wed, 02 Jan 2030 03:04:05 GMT"}}),
                            kTag, kMtime)
            .result == Precondition::proceed);
  // No modification time (the epoch): date checks are skipped.
  CHECK(check_preconditions(get({{"if-modified-since", "Wed, 02 Jan 2030 03:04:05 GMT"}}), kTag, 0).result ==
        Precondition::proceed);
}

TEST_CASE("preconditions: Range with If-Range") {
  CHECK(check_preconditions(get({{"range", "bytes=0-1"}}), kTag, kMtime).use_range);
  CHECK(check_preconditions(get({{"range", "bytes=0-1"}, {"if-range", "\"a-1\""}}), kTag, kMtime).use_range);
  CHECK_FALSE(check_preconditions(get({{"range", "bytes=0-1"}, {"if-range", "W/\"a-1\""}}), kTag, kMtime).use_range);
  CHECK_FALSE(check_preconditions(get({{"range", "bytes=0-1"}, {"if-range", "\"b\""}}), kTag, kMtime).use_range);
  CHECK(check_preconditions(get({{"range", "bytes=0-1"}, {"if-range", "Wed, 02 Jan 2030 03:04:05 GMT"}}), kTag, kMtime)
            .use_range);
  CHECK_FALSE(
      check_preconditions(get({{"range", "bytes=0-1"}, {"if-range", "Wed, 02 Jan 2030 03:04:06 GMT"}}), kTag, kMtime)
          .use_range);
  CHECK_FALSE(check_preconditions(get({{"range", ""}}), kTag, kMtime).use_range);
}
