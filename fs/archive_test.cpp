#include "fs/archive.h"

#include <doctest/doctest.h>

#include <string>

using envd::fs::archive_from_accept;
using envd::fs::ArchiveFormat;
using envd::fs::clean_entry_name;

TEST_CASE("archive: only an explicit media range with q > 0 selects an archive") {
  CHECK(archive_from_accept("") == ArchiveFormat::none);
  CHECK(archive_from_accept("*/*") == ArchiveFormat::none);
  CHECK(archive_from_accept("application/*") == ArchiveFormat::none);
  CHECK(archive_from_accept("application/octet-stream, */*;q=0.8") == ArchiveFormat::none);
  CHECK(archive_from_accept("application/x-tar") == ArchiveFormat::tar);
  CHECK(archive_from_accept("Application/X-Tar ; q=0.1") == ArchiveFormat::tar);
  CHECK(archive_from_accept("application/x-tar;q=0") == ArchiveFormat::none);
  CHECK(archive_from_accept("application/x-tar;q=0.0, */*") == ArchiveFormat::none);
  CHECK(archive_from_accept("application/x-tar;q=abc") == ArchiveFormat::none);
  CHECK(archive_from_accept("application/gzip") == ArchiveFormat::tar_gzip);
  CHECK(archive_from_accept("application/x-tar;q=0.5, application/gzip;q=0.6") == ArchiveFormat::tar_gzip);
  CHECK(archive_from_accept("application/gzip;q=0.5, application/x-tar;q=0.5") == ArchiveFormat::tar_gzip);  // first
  CHECK(archive_from_accept("application/x-tar-ish") == ArchiveFormat::none);
}

TEST_CASE("archive: entry names are cleaned, escapes refused") {
  std::string why;
  CHECK(clean_entry_name("a/b/c", why).value() == "a/b/c");
  CHECK(clean_entry_name("./a//b/./c/", why).value() == "a/b/c");
  CHECK(clean_entry_name("./", why).value() == "");
  CHECK(clean_entry_name(".", why).value() == "");
  CHECK(clean_entry_name("ünï/ñ", why).value() == "ünï/ñ");
  CHECK(clean_entry_name("a..b/..c", why).value() == "a..b/..c");
  CHECK_FALSE(clean_entry_name("../a", why));
  CHECK(why.find("'..'") != std::string::npos);
  CHECK_FALSE(clean_entry_name("a/../../b", why));
  CHECK_FALSE(clean_entry_name("a/..", why));
  CHECK_FALSE(clean_entry_name("/etc/passwd", why));
  CHECK(why.find("absolute") != std::string::npos);
}
