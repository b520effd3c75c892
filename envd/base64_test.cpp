#include "envd/base64.h"

#include <doctest/doctest.h>

using envd::Base64;
using envd::base64_decode;

TEST_CASE("base64: standard alphabet with padding") {
  CHECK(base64_decode("dXNlcjo=", Base64::standard) == "user:");
  CHECK(base64_decode("cm9vdDpwdw==", Base64::standard) == "root:pw");
  CHECK(base64_decode("", Base64::standard) == "");
  CHECK_FALSE(base64_decode("dXNlcjo", Base64::standard));   // missing padding
  CHECK_FALSE(base64_decode("dX=NlcjE", Base64::standard));  // data after padding
  CHECK_FALSE(base64_decode("dXNl!jo=", Base64::standard));  // outside the alphabet
  CHECK_FALSE(base64_decode("AAAA-_==", Base64::standard));  // URL alphabet
}

TEST_CASE("base64: URL-safe alphabet without padding (HTTP2-Settings)") {
  CHECK(base64_decode("AAMAAABkAAQAoAAAAAIAAAAA", Base64::url_unpadded) ==
        std::string("\x00\x03\x00\x00\x00\x64\x00\x04\x00\xa0\x00\x00\x00\x02\x00\x00\x00\x00", 18));
  CHECK(base64_decode("_-8", Base64::url_unpadded) == "\xff\xef");
  CHECK_FALSE(base64_decode("+/8", Base64::url_unpadded));
}
