#include "fs/download_content.h"

#include <doctest/doctest.h>

using namespace envd::fs;

TEST_CASE("Content-Disposition as Go's mime.FormatMediaType (checked against the reference envd)") {
  CHECK(inline_disposition("test.txt") == "inline; filename=test.txt");
  CHECK(inline_disposition("my document.pdf") == "inline; filename=\"my document.pdf\"");
  CHECK(inline_disposition("quo\"te.txt") == "inline; filename=\"quo\\\"te.txt\"");
  CHECK(inline_disposition("back\\slash.txt") == "inline; filename=\"back\\\\slash.txt\"");
  CHECK(inline_disposition("semi;colon") == "inline; filename=\"semi;colon\"");
  CHECK(inline_disposition("tab\tx") == "inline; filename=\"tab\tx\"");
  CHECK(inline_disposition("\xC3\xBCn\xC3\xAF c\xC3\xB6\x64\xC3\xA9.txt") ==
        "inline; filename*=utf-8''%C3%BCn%C3%AF%20c%C3%B6d%C3%A9.txt");
  CHECK(inline_disposition("new\nline") == "inline; filename*=utf-8''new%0Aline");
}

TEST_CASE("path_ext as filepath.Ext") {
  CHECK(path_ext("/a/b.txt") == ".txt");
  CHECK(path_ext("/a.d/b") == "");
  CHECK(path_ext("x.tar.gz") == ".gz");
  CHECK(path_ext("/a/.bashrc") == ".bashrc");
  CHECK(path_ext("") == "");
}

TEST_CASE("type_by_extension: Go's built-ins first, text types with a charset") {
  CHECK(type_by_extension(".json") == "application/json");
  CHECK(type_by_extension(".JSON") == "application/json");
  CHECK(type_by_extension(".html") == "text/html; charset=utf-8");
  CHECK(type_by_extension(".pdf") == "application/pdf");
  CHECK(type_by_extension("") == "");
  CHECK(type_by_extension(".no-such-extension-here") == "");
}

TEST_CASE("sniffing as http.DetectContentType") {
  CHECK(sniff_content_type("") == "text/plain; charset=utf-8");
  CHECK(sniff_content_type("hello\n") == "text/plain; charset=utf-8");
  CHECK(sniff_content_type("  <html><body>") == "text/html; charset=utf-8");
  CHECK(sniff_content_type("<!-- x -->") == "text/html; charset=utf-8");
  CHECK(sniff_content_type("%PDF-1.4") == "application/pdf");
  CHECK(sniff_content_type("\x89PNG\r\n\x1A\n0000") == "image/png");
  CHECK(sniff_content_type(std::string("ab\0cd", 5)) == "application/octet-stream");
  CHECK(sniff_content_type("\x1F\x8B\x08rest") == "application/x-gzip");
}
