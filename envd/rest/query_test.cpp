#include "envd/rest/query.h"

#include <doctest/doctest.h>

using envd::rest::Query;

TEST_CASE("query_unescape: + is a space, then percent-decoding") {
  CHECK(envd::rest::query_unescape("a+b%20c%2Bd") == "a b c+d");
  CHECK(envd::rest::query_unescape("%2e%2E") == "..");
  CHECK(envd::rest::query_unescape("%C3%A9") == "\xC3\xA9");
  CHECK(envd::rest::query_unescape("%00") == std::string("\0", 1));
  CHECK(envd::rest::query_unescape("") == "");
  CHECK_FALSE(envd::rest::query_unescape("%zz"));
  CHECK_FALSE(envd::rest::query_unescape("%"));
  CHECK_FALSE(envd::rest::query_unescape("a%2"));
  CHECK_FALSE(envd::rest::query_unescape("%g0"));
}

TEST_CASE("Query::parse: multi-valued, in order") {
  auto q = Query::parse("path=/a&username=user&path=/b&empty=&bare");
  CHECK(q.values("path") == std::vector<std::string>{"/a", "/b"});
  CHECK(q.values("username") == std::vector<std::string>{"user"});
  CHECK(q.values("empty") == std::vector<std::string>{""});
  CHECK(q.values("bare") == std::vector<std::string>{""});  // reference: `?path` is a present, empty path
  CHECK(q.values("missing").empty());
  CHECK_FALSE(q.has("missing"));
  CHECK_FALSE(q.had_error());
}

TEST_CASE("Query::parse: keys are decoded too, empty pairs skipped") {
  auto q = Query::parse("pa%74h=/tmp/a.txt&&=x&a+b=c+d");
  CHECK(q.values("path") == std::vector<std::string>{"/tmp/a.txt"});  // reference: 200
  CHECK(q.values("") == std::vector<std::string>{"x"});
  CHECK(q.values("a b") == std::vector<std::string>{"c d"});
  CHECK_FALSE(q.had_error());
}

TEST_CASE("Query::parse: a bad pair is dropped, the others kept (reference envd)") {
  // `?path=%zz&path=/tmp/rt/a.txt` → the reference serves the file (one path value).
  auto q = Query::parse("path=%zz&path=/tmp/a.txt");
  CHECK(q.values("path") == std::vector<std::string>{"/tmp/a.txt"});
  CHECK(q.had_error());
  // `?path=/tmp/rt/a.txt;x=1` → no path at all (400 home is a directory).
  q = Query::parse("path=/tmp/a.txt;x=1");
  CHECK_FALSE(q.has("path"));
  CHECK(q.had_error());
  // `?path=/tmp/rt/a.txt&x=1;y` → path kept (200).
  q = Query::parse("path=/tmp/a.txt&x=1;y");
  CHECK(q.values("path") == std::vector<std::string>{"/tmp/a.txt"});
  CHECK_FALSE(q.has("x"));
  q = Query::parse("%zz=1&b=2");
  CHECK(q.all().size() == 1);
}

TEST_CASE("single_value: repeated is the oapi-codegen 400 text") {
  auto q = Query::parse("path=/a&path=&username=u");
  auto p = envd::rest::single_value(q, "path");
  CHECK_FALSE(p.value);
  CHECK(p.error == "Invalid format for parameter path: multiple values for single value parameter 'path'");
  auto u = envd::rest::single_value(q, "username");
  CHECK(u.error.empty());
  CHECK(u.value == "u");
  auto s = envd::rest::single_value(q, "signature");
  CHECK(s.error.empty());
  CHECK_FALSE(s.value);
}

TEST_CASE("single_int64: Go strconv.ParseInt errors as the reference words them") {
  auto err = [](std::string raw) { return envd::rest::single_int64(Query::parse(raw), "signature_expiration").error; };
  auto val = [](std::string raw) { return envd::rest::single_int64(Query::parse(raw), "signature_expiration").value; };
  const std::string pre =
      "Invalid format for parameter signature_expiration: error binding string parameter: strconv.ParseInt: parsing ";
  CHECK(err("signature_expiration=abc") == pre + "\"abc\": invalid syntax");
  CHECK(err("signature_expiration=") == pre + "\"\": invalid syntax");
  CHECK(err("signature_expiration=+5") == pre + "\" 5\": invalid syntax");  // '+' decodes to a space
  CHECK(err("signature_expiration=1_0") == pre + "\"1_0\": invalid syntax");
  CHECK(err("signature_expiration=0x10") == pre + "\"0x10\": invalid syntax");
  CHECK(err("signature_expiration=99999999999999999999") == pre + "\"99999999999999999999\": value out of range");
  CHECK(err("signature_expiration=-") == pre + "\"-\": invalid syntax");
  CHECK(err("signature_expiration=1&signature_expiration=2") ==
        "Invalid format for parameter signature_expiration: multiple values for single value parameter "
        "'signature_expiration'");
  CHECK(val("signature_expiration=-5") == -5);
  CHECK(val("signature_expiration=%2B7") == 7);
  CHECK(val("signature_expiration=9223372036854775807") == INT64_MAX);
  CHECK(val("signature_expiration=-9223372036854775808") == INT64_MIN);
  CHECK(err("signature_expiration=9223372036854775808") == pre + "\"9223372036854775808\": value out of range");
  CHECK_FALSE(val("signature_expiration=%zz"));  // dropped pair: absent (reference: 200)
  CHECK(err("signature_expiration=%zz").empty());
}

TEST_CASE("go_quote") {
  CHECK(envd::rest::go_quote("a\"b\\c\n\x01\x7f") == "\"a\\\"b\\\\c\\n\\x01\\x7f\"");
  CHECK(envd::rest::go_quote("\xC3\xA9") == "\"\xC3\xA9\"");
  CHECK(envd::rest::go_quote("\xff") == "\"\\xff\"");
}
