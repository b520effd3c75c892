#include "envd/rest/content.h"

#include <doctest/doctest.h>

#include <string>

using envd::rest::detect_content_type;
using envd::rest::inline_content_disposition;

TEST_CASE("inline_content_disposition: as the reference envd writes it") {
  CHECK(inline_content_disposition("test.txt") == "inline; filename=test.txt");
  CHECK(inline_content_disposition("my document.pdf") == "inline; filename=\"my document.pdf\"");
  CHECK(inline_content_disposition("a\"b.txt") == "inline; filename=\"a\\\"b.txt\"");
  CHECK(inline_content_disposition("a\\b.txt") == "inline; filename=\"a\\\\b.txt\"");
  CHECK(inline_content_disposition("a%b.txt") == "inline; filename=a%b.txt");
  CHECK(inline_content_disposition("a'b.txt") == "inline; filename=a'b.txt");
  CHECK(inline_content_disposition("a*b.txt") == "inline; filename=a*b.txt");
  CHECK(inline_content_disposition("a~b.txt") == "inline; filename=a~b.txt");
  CHECK(inline_content_disposition("a(b).txt") == "inline; filename=\"a(b).txt\"");
  CHECK(inline_content_disposition("a;b.txt") == "inline; filename=\"a;b.txt\"");
  CHECK(inline_content_disposition("a=b") == "inline; filename=\"a=b\"");
  CHECK(inline_content_disposition("a\tb.txt") == "inline; filename=\"a\tb.txt\"");
  CHECK(inline_content_disposition("a\x01"
                                   "b") == "inline; filename*=utf-8''a%01b");
  CHECK(inline_content_disposition("a\x7f"
                                   "b") == "inline; filename*=utf-8''a%7Fb");
  CHECK(inline_content_disposition("\xC3\xA9.txt") == "inline; filename*=utf-8''%C3%A9.txt");
  CHECK(inline_content_disposition("\xC3\xA9'*%(x y).txt") ==
        "inline; filename*=utf-8''%C3%A9%27%2A%25%28x%20y%29.txt");
  CHECK(inline_content_disposition("") == "inline; filename=\"\"");
}

TEST_CASE("type_by_extension: Go's built-ins, globs2, mime.types") {
  using envd::rest::type_by_extension_in;
  const std::string globs2 =
      "# comment\n"
      "60:text/x-python:*.py\n"
      "50:text/x-python3:*.py\n"
      "50:application/x-shellscript:*.sh\n"
      "50:text/plain:*.txt\n"
      "50:application/gzip:*.gz\n"
      "50:application/x-ext:*.json\n"  // built-ins win over globs2
      "50:text/x-c++src:*.C:cs\n"
      "50:text/x-csrc:*.c\n"
      "50:application/x-glob:*.[ab]\n"
      "50:text/x-makefile:Makefile\n";
  CHECK(type_by_extension_in("/a/b.py", globs2, "") == "text/x-python; charset=utf-8");
  CHECK(type_by_extension_in("b.sh", globs2, "") == "application/x-shellscript");
  CHECK(type_by_extension_in("b.txt", globs2, "") == "text/plain; charset=utf-8");
  CHECK(type_by_extension_in("b.TXT", globs2, "") == "text/plain; charset=utf-8");
  CHECK(type_by_extension_in("b.tar.gz", globs2, "") == "application/gzip");
  CHECK(type_by_extension_in("b.json", globs2, "") == "application/json");
  CHECK(type_by_extension_in("b.Json", globs2, "") == "application/json");
  CHECK(type_by_extension_in("b.c", globs2, "") == "text/x-csrc; charset=utf-8");
  CHECK(type_by_extension_in("b.C", globs2, "") == "text/x-c++src; charset=utf-8");
  CHECK(type_by_extension_in("b.a", globs2, "") == "");
  CHECK(type_by_extension_in("Makefile", globs2, "") == "");
  CHECK(type_by_extension_in("noext", globs2, "") == "");
  CHECK(type_by_extension_in("/dir.d/noext", globs2, "") == "");
  CHECK(type_by_extension_in("b.html", globs2, "") == "text/html; charset=utf-8");
  CHECK(type_by_extension_in("b.wasm", "", "") == "application/wasm");
  const std::string mime_types = "# c\napplication/x-sh\tsh\ntext/x-sh sh bash # trailing\napplication/x-json json\n";
  CHECK(type_by_extension_in("b.sh", "", mime_types) == "text/x-sh; charset=utf-8");  // later lines win
  CHECK(type_by_extension_in("b.bash", "", mime_types) == "text/x-sh; charset=utf-8");
  CHECK(type_by_extension_in("b.json", "", mime_types) == "application/x-json");  // mime.types override built-ins
}

TEST_CASE("type_by_extension on this machine agrees with the reference envd") {
  // Observed with /usr/share/mime/globs2 present: these come from Go's table or from globs2.
  if (envd::rest::type_by_extension("a.sh") != "application/x-shellscript") return;  // another system's tables
  CHECK(envd::rest::type_by_extension("/tmp/a.txt") == "text/plain; charset=utf-8");
  CHECK(envd::rest::type_by_extension("/tmp/a.py") == "text/x-python; charset=utf-8");
  CHECK(envd::rest::type_by_extension("/tmp/a.json") == "application/json");
  CHECK(envd::rest::type_by_extension("/tmp/a.tar.gz") == "application/gzip");
  CHECK(envd::rest::type_by_extension("/tmp/a.yaml") == "application/x-yaml");
  CHECK(envd::rest::type_by_extension("/tmp/a.js") == "text/javascript; charset=utf-8");
  CHECK(envd::rest::type_by_extension("/tmp/noext") == "");
}

TEST_CASE("detect_content_type: what the reference envd sniffed (files without an extension)") {
  struct Case {
    const char* name;
    std::string data;
    const char* want;
  };
  const Case cases[] = {
      {"after512", std::string(512, 'a') + std::string(1, '\0'), "text/plain; charset=utf-8"},
      {"aiff", std::string("\x46\x4f\x52\x4d\x00\x00\x00\x00\x41\x49\x46\x46", 12), "audio/aiff"},
      {"avi", std::string("\x52\x49\x46\x46\x00\x00\x00\x00\x41\x56\x49\x20\x4c\x49\x53\x54", 16), "video/avi"},
      {"bin", std::string("\x68\x65\x6c\x6c\x6f\x00", 6), "application/octet-stream"},
      {"bin2", std::string("\x61\x62\x63\x0b", 4), "application/octet-stream"},
      {"bmp", std::string("\x42\x4d\x78\x78", 4), "image/bmp"},
      {"bom3", std::string("\xef\xbb\xbf", 3), "text/plain; charset=utf-8"},
      {"empty", std::string("", 0), "text/plain; charset=utf-8"},
      {"eot",
       std::string("\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
                   "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x4c\x50\x2e\x2e",
                   38),
       "application/vnd.ms-fontobject"},
      {"gif", std::string("\x47\x49\x46\x38\x39\x61\x2e\x2e", 8), "image/gif"},
      {"gz", std::string("\x1f\x8b\x08\x00", 4), "application/x-gzip"},
      {"html1", std::string("\x20\x20\x3c\x21\x44\x4f\x43\x54\x59\x50\x45\x20\x68\x74\x6d\x6c\x3e\x3c\x70\x3e", 20),
       "text/html; charset=utf-8"},
      {"html2", std::string("\x3c\x68\x74\x6d\x6c\x3e", 6), "text/html; charset=utf-8"},
      {"html3", std::string("\x3c\x48\x74\x4d\x6c\x3e", 6), "text/html; charset=utf-8"},
      {"html4", std::string("\x3c\x61\x20\x68\x72\x65\x66\x3d\x22\x78\x22\x3e", 12), "text/html; charset=utf-8"},
      {"html5", std::string("\x3c\x61\x78\x3e", 4), "text/plain; charset=utf-8"},
      {"html6", std::string("\x3c\x21\x2d\x2d\x20\x63\x20\x2d\x2d\x3e", 10), "text/html; charset=utf-8"},
      {"html7", std::string("\x3c\x70", 2), "text/plain; charset=utf-8"},
      {"html8", std::string("\x0a\x09\x3c\x62\x72\x3e", 6), "text/html; charset=utf-8"},
      {"ico", std::string("\x00\x00\x01\x00\x78\x78", 6), "image/x-icon"},
      {"jpg", std::string("\xff\xd8\xff\xe0", 4), "image/jpeg"},
      {"late_bin", std::string(511, 'a') + std::string(1, '\0'), "application/octet-stream"},
      {"latin1", std::string("\x68\xe9\x6c\x6c\x6f", 5), "text/plain; charset=utf-8"},
      {"midi", std::string("\x4d\x54\x68\x64\x00\x00\x00\x06\x2e\x2e", 10), "audio/midi"},
      {"mp3", std::string("\x49\x44\x33\x03", 4), "audio/mpeg"},
      {"mp4",
       std::string("\x00\x00\x00\x18\x66\x74\x79\x70\x69\x73\x6f\x6d\x00\x00\x02\x00\x6d\x70\x34\x31\x69\x73\x6f\x35",
                   24),
       "video/mp4"},
      {"ogg", std::string("\x4f\x67\x67\x53\x00\x2e\x2e", 7), "application/ogg"},
      {"otf", std::string("\x4f\x54\x54\x4f\x2e\x2e", 6), "font/otf"},
      {"pdf", std::string("\x25\x50\x44\x46\x2d\x31\x2e\x34", 8), "application/pdf"},
      {"pdfws", std::string("\x20\x25\x50\x44\x46\x2d\x31\x2e\x34", 9), "text/plain; charset=utf-8"},
      {"png", std::string("\x89\x50\x4e\x47\x0d\x0a\x1a\x0a\x2e\x2e\x2e\x2e", 12), "image/png"},
      {"ps", std::string("\x25\x21\x50\x53\x2d\x41\x64\x6f\x62\x65\x2d\x33\x2e\x30", 14), "application/postscript"},
      {"rar", std::string("\x52\x61\x72\x21\x1a\x07\x00\x2e", 8), "application/x-rar-compressed"},
      {"text", std::string("\x68\x65\x6c\x6c\x6f\x0a\x77\x6f\x72\x6c\x64\x09\x1b", 13), "text/plain; charset=utf-8"},
      {"ttf", std::string("\x00\x01\x00\x00\x2e\x2e", 6), "font/ttf"},
      {"u16be", std::string("\xfe\xff\x00\x61", 4), "text/plain; charset=utf-16be"},
      {"u16le", std::string("\xff\xfe\x61\x00", 4), "text/plain; charset=utf-16le"},
      {"u8bom", std::string("\xef\xbb\xbf\x68\x69", 5), "text/plain; charset=utf-8"},
      {"utf8", std::string("\x68\xc3\xa9\x6c\x6c\x6f", 6), "text/plain; charset=utf-8"},
      {"wasm", std::string("\x00\x61\x73\x6d\x01\x00\x00\x00", 8), "application/wasm"},
      {"wav", std::string("\x52\x49\x46\x46\x00\x00\x00\x00\x57\x41\x56\x45\x66\x6d\x74\x20", 16), "audio/wave"},
      {"webm", std::string("\x1a\x45\xdf\xa3\x2e\x2e\x2e", 7), "video/webm"},
      {"webp", std::string("\x52\x49\x46\x46\x10\x00\x00\x00\x57\x45\x42\x50\x56\x50\x38\x20", 16), "image/webp"},
      {"woff2", std::string("\x77\x4f\x46\x32\x2e\x2e", 6), "font/woff2"},
      {"ws", std::string("\x20\x09\x0d\x0a", 4), "text/plain; charset=utf-8"},
      {"xml",
       std::string("\x20\x3c\x3f\x78\x6d\x6c\x20\x76\x65\x72\x73\x69\x6f\x6e\x3d\x22\x31\x2e\x30\x22\x3f\x3e", 22),
       "text/xml; charset=utf-8"},
      {"zip", std::string("\x50\x4b\x03\x04\x2e\x2e", 6), "application/zip"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    CHECK(detect_content_type(c.data) == c.want);
  }
}
