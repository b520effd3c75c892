#include "fs/archive.h"

#include <doctest/doctest.h>

#include <map>
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

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <vector>

namespace {

struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/envd-archive-test-XXXXXX";
    path = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

void write_file(const std::string& p, const std::string& data) { std::ofstream(p, std::ios::binary) << data; }

struct Parsed {
  std::vector<envd::rest::TarEntry> entries;
  std::vector<std::string> data;
  bool ended = false;
};

Parsed parse(const std::string& archive) {
  envd::rest::TarReader r;
  Parsed out;
  std::string_view in = archive;
  for (;;) {
    auto ev = r.next(in);
    if (ev == envd::rest::TarReader::Event::entry) {
      out.entries.push_back(r.entry());
      out.data.emplace_back();
    } else if (ev == envd::rest::TarReader::Event::data) {
      out.data.back() += r.data();
    } else {
      out.ended = ev == envd::rest::TarReader::Event::end;
      REQUIRE(ev != envd::rest::TarReader::Event::error);
      break;
    }
  }
  return out;
}

// Archives `dir` with a file `f`; after the first piece (which holds f's header and `first`
// bytes of it) `change` runs; returns the parsed archive.
Parsed archive_with_change(const std::string& dir, std::size_t first, void (*change)(const std::string&)) {
  envd::fs::ArchiveOptions opts;
  envd::fs::DirArchiver a(opts, dir);
  REQUIRE(a.open_root(dir) == 0);
  std::string out;
  a.fill(out, 512 + first);
  change(dir + "/f");
  for (bool more = true; more;) {
    std::string piece;  // a fresh piece each time, as the handler does
    more = a.fill(piece, 4096);
    out += piece;
  }
  CHECK(a.changed_files() == 1);
  return parse(out);
}

// The whole archive of `dir`, in 4 KiB pieces as the handler asks for them.
std::string archive_all(const std::string& dir) {
  envd::fs::ArchiveOptions opts;
  envd::fs::DirArchiver a(opts, dir);
  REQUIRE(a.open_root(dir) == 0);
  std::string out;
  for (bool more = true; more;) {
    std::string piece;  // a fresh piece each time, as the handler does
    more = a.fill(piece, 4096);
    out += piece;
  }
  return out;
}

}  // namespace

TEST_CASE("archive: a file that shrinks while read is padded with zeros to its header's size") {
  TempDir t;
  write_file(t.path + "/f", std::string(10000, 'a'));
  Parsed p = archive_with_change(t.path, 1000, [](const std::string& f) { REQUIRE(::truncate(f.c_str(), 3000) == 0); });
  REQUIRE(p.entries.size() == 1);
  CHECK(p.ended);
  CHECK(p.entries[0].size == 10000);
  CHECK(p.data[0] == std::string(3000, 'a') + std::string(7000, '\0'));
}

TEST_CASE("archive: a file that grows while read is cut to its header's size") {
  TempDir t;
  write_file(t.path + "/f", std::string(5000, 'b'));
  Parsed p = archive_with_change(t.path, 100, [](const std::string& f) {
    std::ofstream(f, std::ios::binary | std::ios::app) << std::string(5000, 'c');
  });
  REQUIRE(p.entries.size() == 1);
  CHECK(p.entries[0].size == 5000);
  CHECK(p.data[0] == std::string(5000, 'b'));
}

TEST_CASE("archive: FIFOs are headers only, symlinks are links, directories end in '/'") {
  TempDir t;
  REQUIRE(::mkfifo((t.path + "/p").c_str(), 0600) == 0);
  REQUIRE(::symlink("../nowhere", (t.path + "/l").c_str()) == 0);
  std::filesystem::create_directory(t.path + "/d");
  write_file(t.path + "/d/x", "x");
  Parsed p = parse(archive_all(t.path));
  CHECK(p.ended);
  std::map<std::string, envd::rest::TarEntry> by_name;
  for (auto& e : p.entries) by_name[e.name] = e;
  REQUIRE(by_name.size() == 4);
  CHECK(by_name.at("p").type == envd::rest::TarType::fifo);
  CHECK(by_name.at("l").type == envd::rest::TarType::symlink);
  CHECK(by_name.at("l").linkname == "../nowhere");
  CHECK(by_name.at("d/").type == envd::rest::TarType::directory);
  CHECK(by_name.at("d/x").size == 1);
}

TEST_CASE("archive: a file's other names go out as hard links to its first, and come back linked") {
  TempDir t;
  std::filesystem::create_directory(t.path + "/src");
  std::filesystem::create_directory(t.path + "/src/d");
  write_file(t.path + "/src/f", "hello");
  REQUIRE(::link((t.path + "/src/f").c_str(), (t.path + "/src/d/g").c_str()) == 0);
  REQUIRE(::link((t.path + "/src/f").c_str(), (t.path + "/src/h").c_str()) == 0);
  write_file(t.path + "/src/single", "one");
  const std::string out = archive_all(t.path + "/src");
  Parsed p = parse(out);
  std::string first;  // the name the data went out under (readdir order decides which)
  int links = 0;
  for (std::size_t i = 0; i < p.entries.size(); ++i) {
    const auto& e = p.entries[i];
    if (e.name == "f" || e.name == "d/g" || e.name == "h") {
      if (e.type == envd::rest::TarType::hard_link) {
        ++links;
        CHECK(e.size == 0);
        CHECK(p.data[i].empty());
        CHECK(e.linkname == first);  // always to a name already in the archive
      } else {
        CHECK(first.empty());
        first = e.name;
        CHECK(p.data[i] == "hello");
      }
    }
    if (e.name == "single") CHECK(e.type == envd::rest::TarType::regular);
  }
  CHECK(links == 2);
  CHECK_FALSE(first.empty());

  envd::fs::ArchiveOptions opts;
  envd::fs::ArchiveExtractor x(opts, ::getuid(), ::getgid());
  REQUIRE_FALSE(x.begin(t.path + "/dst").has_value());
  REQUIRE_FALSE(x.feed(out).has_value());
  REQUIRE_FALSE(x.finish().has_value());
  struct stat f {
  }, g{}, h{};
  REQUIRE(::stat((t.path + "/dst/f").c_str(), &f) == 0);
  REQUIRE(::stat((t.path + "/dst/d/g").c_str(), &g) == 0);
  REQUIRE(::stat((t.path + "/dst/h").c_str(), &h) == 0);
  CHECK(f.st_nlink == 3);
  CHECK(f.st_ino == g.st_ino);
  CHECK(f.st_ino == h.st_ino);
  CHECK(f.st_size == 5);
}
