#include "envd/rest/multipart.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using envd::rest::MultipartEvent;
using envd::rest::MultipartReader;

namespace {

// Feeds `body` split at the given offsets; returns a transcript:
// "[name|filename]data..." per part, "|" at part end, then "done" or "error:<text>".
std::string run(std::string_view body, const std::vector<std::size_t>& cuts, std::string boundary = "XX",
                std::size_t max_header = envd::rest::kDefaultMaxPartHeaderBytes) {
  MultipartReader r(std::move(boundary), max_header);
  std::string t;
  std::size_t prev = 0;
  std::vector<std::size_t> points = cuts;
  points.push_back(body.size());
  for (std::size_t cut : points) {
    std::string chunk(body.substr(prev, cut - prev));  // a fresh buffer per chunk
    prev = cut;
    std::string_view in = chunk;
    while (true) {
      auto ev = r.next(in);
      if (ev == MultipartEvent::need_more) {
        REQUIRE(in.empty());
        break;
      }
      if (ev == MultipartEvent::part_begin) {
        t += "[" + r.headers().form_name() + "|" + r.headers().filename().value_or("-") + "]";
      } else if (ev == MultipartEvent::data) {
        REQUIRE(!r.data().empty());
        t += r.data();
      } else if (ev == MultipartEvent::part_end) {
        t += "|";
      } else if (ev == MultipartEvent::done) {
        return t + "done";
      } else {
        return t + "error:" + r.error();
      }
    }
  }
  auto ev = r.finish();
  if (ev == MultipartEvent::done) return t + "done";
  return t + "error:" + r.error();
}

std::string run_whole(std::string_view body, std::string boundary = "XX") { return run(body, {}, std::move(boundary)); }

// Every split into two and three pieces gives the same transcript as the whole body.
void check_all_splits(std::string_view body, const std::string& want) {
  CHECK(run_whole(body) == want);
  for (std::size_t i = 0; i <= body.size(); ++i) {
    CAPTURE(i);
    REQUIRE(run(body, {i}) == want);
    for (std::size_t j = i; j <= body.size(); j += 3) REQUIRE(run(body, {i, j}) == want);
  }
  std::vector<std::size_t> bytewise;
  for (std::size_t i = 1; i < body.size(); ++i) bytewise.push_back(i);
  CHECK(run(body, bytewise) == want);
}

const std::string kTwoParts =
    "preamble line\r\n"
    "--XX\r\n"
    "Content-Disposition: form-data; name=\"file\"; filename=\"/tmp/a b.txt\"\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "hel\r\n--XX-lo\r\n--XXy\r\n-\r\r\n\r\n"
    "--XX  \r\n"
    "Content-Disposition: form-data; name=\"other\"\r\n"
    "\r\n"
    "\r\n"
    "--XX--\r\n"
    "epilogue --XX\r\n";

}  // namespace

TEST_CASE("multipart: parts, delimiters that are data, every split") {
  check_all_splits(kTwoParts, "[file|/tmp/a b.txt]hel\r\n--XX-lo\r\n--XXy\r\n-\r\r\n|[other|-]|done");
}

TEST_CASE("multipart: empty parts, a final delimiter with padding and no CRLF") {
  check_all_splits("--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x\"\r\n\r\n\r\n--XX-- \t",
                   "[file|x]|done");
}

TEST_CASE("multipart: LF-only bodies (the first delimiter line decides)") {
  check_all_splits(
      "preamble\n--XX\nContent-Disposition: form-data; name=\"file\"; filename=\"/tmp/m5.txt\"\n\nhello\n--XX--",
      "[file|/tmp/m5.txt]hello|done");
}

TEST_CASE("multipart: reference cases") {
  // --XX-- first: no parts (reference: 200 []).
  CHECK(run_whole("--XX--\r\n") == "done");
  // No delimiter at all (reference: "multipart: NextPart: EOF").
  CHECK(run_whole("no boundary here") == "error:multipart: NextPart: EOF");
  CHECK(run_whole("") == "error:multipart: NextPart: EOF");
  // Truncated part (reference: "unexpected EOF" while writing).
  CHECK(run_whole("--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"/tmp/m4.txt\"\r\n\r\nhel") ==
        "[file|/tmp/m4.txt]hel" + std::string("error:unexpected EOF"));
  // A final delimiter followed by garbage without a newline: the first part is complete, then
  // "multipart: NextPart: EOF" (reference).
  CHECK(run_whole(
            "--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"f\"\r\n\r\nhello\r\n--XX--garbage") ==
        "[file|f]hello|error:multipart: NextPart: EOF");
  CHECK(run_whole("--XX\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nhello\r\n--XX--garbage\r\n") ==
        "[file|-]hello|error:multipart: expecting a new Part; got line \"--XX--garbage\\r\\n\"");
  // A header line without a colon (reference wording).
  CHECK(run_whole("--XX\r\nContent-Disposition: form-data; name=\"file\"\r\nbad header\r\n\r\nhello\r\n--XX--\r\n") ==
        "error:malformed MIME header: missing colon: \"bad header\"");
  // Not a delimiter line after `--XX` (CR LF in CRLF mode needs the CR).
  CHECK(run_whole("--XX\r\nA: b\r\n\r\nx\r\n--XX\nA: b\r\n\r\n") ==
        "[|-]x|error:multipart: expecting a new Part; got line \"--XX\\n\"");
}

TEST_CASE("multipart: filenames as Go's ParseMediaType gives them, verbatim otherwise") {
  auto name_of = [](std::string cd) {
    return run_whole("--XX\r\nContent-Disposition: " + cd + "\r\n\r\nx\r\n--XX--\r\n");
  };
  CHECK(name_of("form-data; name=\"file\"; filename=\"/tmp/m7 \\\"q\\\" %22.txt\"") ==
        "[file|/tmp/m7 \"q\" %22.txt]x|done");
  CHECK(name_of("form-data; name=\"file\"; filename*=utf-8''%2Ftmp%2Fm8%C3%A9.txt") ==
        "[file|/tmp/m8\xC3\xA9.txt]x|done");
  CHECK(name_of(
            "form-data; name=\"file\"; filename=\"/tmp/m14.txt\"; filename*0=\"/tmp/m14\"; filename*1=\"-cont.txt\"") ==
        "[file|/tmp/m14-cont.txt]x|done");
  CHECK(name_of("form-data; name=\"file\"; filename=\"/tmp/m13\\\\a\\\\b.txt\"") == "[file|/tmp/m13\\a\\b.txt]x|done");
  CHECK(name_of("form-data; name=\"file\"; filename=\"C:\\x\"") == "[file|C:\\x]x|done");  // \x is not an escape
  // Malformed dispositions leave no parameters (reference: the part is skipped, 200 []).
  CHECK(name_of("form-data; name=file; filename=/tmp/m11.txt") == "[|-]x|done");
  CHECK(name_of("form-data; name=\"file\"; filename=\"a\"; filename=\"b\"") == "[|-]x|done");
  CHECK(name_of("attachment; name=\"file\"; filename=\"a\"") == "[|a]x|done");      // not form-data: no form name
  CHECK(name_of("form-data; name=\"file\"; filename=\"a\";") == "[file|a]x|done");  // trailing ';'
}

TEST_CASE("multipart: the header block is bounded") {
  std::string big = "--XX\r\nX-Big: " + std::string(200, 'a') + "\r\n\r\nx\r\n--XX--\r\n";
  CHECK(run(big, {}, "XX", 100) == "error:multipart: part header block larger than 100 bytes");
  CHECK(run(big, {}, "XX", 1000) == "[|-]x|done");
  std::vector<std::size_t> cuts;
  for (std::size_t i = 1; i < big.size(); ++i) cuts.push_back(i);
  CHECK(run(big, cuts, "XX", 100) == "error:multipart: part header block larger than 100 bytes");
}

TEST_CASE("multipart: a large part streams in pieces without being gathered") {
  std::string data(1 << 20, 'z');
  for (std::size_t i = 0; i < data.size(); i += 997) data[i] = '\r';
  for (std::size_t i = 5; i < data.size(); i += 1999) data[i] = '\n';
  std::string body =
      "--B0undary\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\n" + data + "\r\n--B0undary--\r\n";
  MultipartReader r("B0undary");
  std::string got;
  std::size_t biggest = 0;
  for (std::size_t pos = 0; pos < body.size(); pos += 65536) {
    std::string_view in = std::string_view(body).substr(pos, 65536);
    while (true) {
      auto ev = r.next(in);
      if (ev == MultipartEvent::need_more || ev == MultipartEvent::done) break;
      if (ev == MultipartEvent::data) {
        got += r.data();
        biggest = std::max(biggest, r.data().size());
        // Zero-copy: body data points into the input chunk (only held-back delimiter candidates are copied).
        if (r.data().size() > 64)
          CHECK((r.data().data() >= body.data() && r.data().data() < body.data() + body.size()));
      }
      REQUIRE(ev != MultipartEvent::error);
    }
  }
  CHECK(r.finish() == MultipartEvent::done);
  CHECK(got == data);
  CHECK(biggest <= 65536);
}

TEST_CASE("multipart_boundary") {
  CHECK(envd::rest::multipart_boundary("multipart/form-data; boundary=XX").boundary == "XX");
  CHECK(envd::rest::multipart_boundary("Multipart/Form-Data; BOUNDARY=\"a b\"").boundary == "a b");
  CHECK(envd::rest::multipart_boundary("multipart/mixed; boundary=XX").boundary == "XX");  // reference: accepted
  CHECK(envd::rest::multipart_boundary("multipart/form-data").error == "no multipart boundary param in Content-Type");
  CHECK_FALSE(envd::rest::multipart_boundary("multipart/form-data; boundary").error.empty());
  CHECK_FALSE(envd::rest::multipart_boundary("text/plain; boundary=x").error.empty());
}
