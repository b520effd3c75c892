#include "envd/rest/tar.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

using envd::rest::TarEntry;
using envd::rest::TarLimits;
using envd::rest::TarReader;
using envd::rest::TarType;

namespace {

struct Read {
  std::vector<TarEntry> entries;
  std::vector<std::string> data;  // per entry
  std::string error;
  int status = 0;
  bool ended = false;
};

// Feeds `archive` in pieces of `piece` bytes (each a fresh buffer), then finish().
Read read_all(const std::string& archive, std::size_t piece, TarLimits limits = {}) {
  TarReader r(limits);
  Read out;
  auto handle = [&](TarReader::Event ev) {
    switch (ev) {
      case TarReader::Event::entry:
        out.entries.push_back(r.entry());
        out.data.emplace_back();
        break;
      case TarReader::Event::data: out.data.back() += r.data(); break;
      case TarReader::Event::end: out.ended = true; break;
      case TarReader::Event::error:
        out.error = r.error();
        out.status = r.error_status();
        break;
      default: break;
    }
  };
  for (std::size_t off = 0; off < archive.size() && out.error.empty(); off += piece) {
    std::string chunk = archive.substr(off, piece);
    std::string_view in = chunk;
    for (;;) {
      auto ev = r.next(in);
      if (ev == TarReader::Event::need_more) {
        REQUIRE(in.empty());
        break;
      }
      handle(ev);
      if (ev == TarReader::Event::error) break;
      if (ev == TarReader::Event::end && in.empty()) break;
    }
  }
  if (out.error.empty()) {
    auto ev = r.finish();
    if (ev == TarReader::Event::error) handle(ev);
    if (ev == TarReader::Event::end) out.ended = true;
  }
  return out;
}

TarEntry file(std::string name, std::uint64_t size, std::uint32_t mode = 0644) {
  TarEntry e;
  e.name = std::move(name);
  e.size = size;
  e.mode = mode;
  e.mtime = 1700000000;
  e.uid = 1000;
  e.gid = 1000;
  return e;
}

std::string with_data(const TarEntry& e, const std::string& data) {
  return envd::rest::tar_headers(e) + data + envd::rest::tar_padding(data.size());
}

// After editing a header block by hand.
void fix_checksum(std::string& h) {
  std::memset(h.data() + 148, ' ', 8);
  char sum[8];
  std::snprintf(sum, sizeof sum, "%06o", envd::rest::tar_checksum(h));
  h.replace(148, 7, std::string(sum, 6) + '\0');
}

}  // namespace

TEST_CASE("tar: header blocks have the ustar layout and a valid checksum") {
  std::string h = envd::rest::tar_headers(file("a.txt", 5));
  REQUIRE(h.size() == 512);
  CHECK(h.substr(0, 6) == std::string("a.txt\0", 6));
  CHECK(h.substr(257, 8) == std::string("ustar\0"
                                        "00",
                                        8));
  CHECK(h.substr(124, 12) == std::string("00000000005\0", 12));
  CHECK(h.substr(100, 8) == std::string("0000644\0", 8));
  unsigned sum = envd::rest::tar_checksum(h);
  char want[8];
  std::snprintf(want, sizeof want, "%06o", sum);
  CHECK(h.substr(148, 6) == want);
}

TEST_CASE("tar: round trip of files, directories, links, xattrs, in any piece size") {
  std::string archive;
  TarEntry d = file("dir", 0, 0755);
  d.type = TarType::directory;
  archive += envd::rest::tar_headers(d);
  TarEntry f = file("dir/héllo wörld.txt", 11);
  f.xattrs["user.e2b.owner"] = "me";
  f.xattrs["user.e2b.empty-ish"] = " ";
  archive += with_data(f, "hello world");
  TarEntry l = file("dir/link", 0, 0777);
  l.type = TarType::symlink;
  l.linkname = "../elsewhere/" + std::string(150, 'x');  // long link → pax linkpath
  archive += envd::rest::tar_headers(l);
  std::string long_name = "dir/" + std::string(200, 'n') + "/" + std::string(120, 'm');
  archive += with_data(file(long_name, 600), std::string(600, 'z'));
  TarEntry big = file("dir/big", 0);
  big.uid = 1u << 30;  // beyond 7 octal digits → pax uid
  archive += with_data(big, "");
  archive += envd::rest::tar_end();
  CHECK(archive.size() % 512 == 0);

  for (std::size_t piece : {1ul, 7ul, 511ul, 512ul, 513ul, 4096ul, archive.size()}) {
    CAPTURE(piece);
    Read r = read_all(archive, piece);
    REQUIRE(r.error == "");
    CHECK(r.ended);
    REQUIRE(r.entries.size() == 5);
    CHECK(r.entries[0].name == "dir/");
    CHECK(r.entries[0].type == TarType::directory);
    CHECK(r.entries[0].mode == 0755);
    CHECK(r.entries[1].name == "dir/héllo wörld.txt");
    CHECK(r.data[1] == "hello world");
    CHECK(r.entries[1].mtime == 1700000000);
    CHECK(r.entries[1].uid == 1000);
    CHECK(r.entries[1].xattrs.at("user.e2b.owner") == "me");
    CHECK(r.entries[1].xattrs.at("user.e2b.empty-ish") == " ");
    CHECK(r.entries[2].type == TarType::symlink);
    CHECK(r.entries[2].linkname == l.linkname);
    CHECK(r.entries[3].name == long_name);
    CHECK(r.data[3] == std::string(600, 'z'));
    CHECK(r.entries[4].uid == (1u << 30));
    CHECK(r.data[4].empty());
  }
}

TEST_CASE("tar: size fields: octal, GNU base-256 and pax size") {
  std::string h = envd::rest::tar_headers(file("f", 3));
  // base-256: 0x80, then the value big-endian in the rest of the 12 bytes.
  std::string b = h;
  std::string size(12, '\0');
  size[0] = static_cast<char>(0x80);
  size[11] = 3;
  b.replace(124, 12, size);
  fix_checksum(b);
  Read r = read_all(b + "abc" + envd::rest::tar_padding(3) + envd::rest::tar_end(), 100);
  REQUIRE(r.error == "");
  CHECK(r.data[0] == "abc");

  // A size too big for 11 octal digits goes to a pax record, and reads back.
  TarEntry huge = file("huge", 9ull << 30);
  std::string hh = envd::rest::tar_headers(huge);
  CHECK(hh.size() == 3 * 512);  // pax header, its record block, the ustar block
  CHECK(hh.find("size=9663676416\n") != std::string::npos);
  TarReader reader;
  std::string_view in = hh;
  CHECK(reader.next(in) == TarReader::Event::entry);
  CHECK(reader.entry().size == (9ull << 30));

  // A bad digit in the size field.
  std::string bad = h;
  bad[124] = '9';
  Read rb = read_all(bad + envd::rest::tar_end(), 512);
  CHECK(rb.status == 400);
  // (the checksum fails first, which is also a 400: either way the archive is refused)
  CHECK(!rb.error.empty());
}

TEST_CASE("tar: header-only types carry no data whatever their size field says") {
  TarEntry d = file("d", 0, 0755);
  d.type = TarType::directory;
  std::string h = envd::rest::tar_headers(d);
  // size 1024 on a directory, checksum fixed up
  h.replace(124, 12, std::string("00000002000\0", 12));
  fix_checksum(h);
  Read r = read_all(h + with_data(file("f", 1), "x") + envd::rest::tar_end(), 512);
  REQUIRE(r.error == "");
  REQUIRE(r.entries.size() == 2);
  CHECK(r.entries[0].size == 0);
  CHECK(r.data[1] == "x");
}

TEST_CASE("tar: a corrupt checksum is a 400") {
  std::string h = envd::rest::tar_headers(file("a", 0));
  h[0] = 'b';
  Read r = read_all(h + envd::rest::tar_end(), 512);
  CHECK(r.status == 400);
  CHECK(r.error.find("checksum mismatch") != std::string::npos);
  // Not a tar at all.
  Read junk = read_all(std::string(1024, 'j'), 1024);
  CHECK(junk.status == 400);
}

TEST_CASE("tar: truncated archives are refused") {
  std::string full = with_data(file("a", 1000), std::string(1000, 'a')) + envd::rest::tar_end();
  for (std::size_t cut : {0ul, 100ul, 512ul, 700ul, 1512ul, 1536ul}) {
    CAPTURE(cut);
    Read r = read_all(full.substr(0, cut), 64);
    CHECK(r.status == 400);
    CHECK(r.error.find("unexpected end of archive") != std::string::npos);
  }
  Read whole = read_all(full, 64);
  CHECK(whole.error == "");
  CHECK(whole.ended);
}

TEST_CASE("tar: bounds on pax records and names") {
  TarEntry e = file("a", 0);
  e.xattrs["user.e2b.big"] = std::string(2000, 'v');
  std::string a = envd::rest::tar_headers(e) + envd::rest::tar_end();
  TarLimits small;
  small.max_header_bytes = 1024;
  Read r = read_all(a, 512, small);
  CHECK(r.status == 413);
  CHECK(r.error.find("pax header") != std::string::npos);
  CHECK(read_all(a, 512).error == "");

  TarLimits names;
  names.max_name_bytes = 50;
  Read n = read_all(with_data(file(std::string(60, 'x'), 0), "") + envd::rest::tar_end(), 512, names);
  CHECK(n.status == 400);
  CHECK(n.error.find("longer than the limit") != std::string::npos);
}

TEST_CASE("tar: malformed pax records are a 400") {
  // A hand-made 'x' header whose record has a wrong length.
  TarEntry ph = file("././@PaxHeader", 10);
  std::string rec = "99 path=a\n";
  std::string h = envd::rest::tar_headers(ph);
  h[156] = 'x';
  fix_checksum(h);
  Read r = read_all(h + rec + envd::rest::tar_padding(rec.size()) + with_data(file("b", 0), "") + envd::rest::tar_end(),
                    512);
  CHECK(r.status == 400);
  CHECK(r.error.find("invalid pax record") != std::string::npos);
}

TEST_CASE("tar: GNU long names ('L') are read") {
  std::string name(300, 'q');
  TarEntry l = file("././@LongLink", name.size() + 1);
  std::string h = envd::rest::tar_headers(l);
  h[156] = 'L';
  fix_checksum(h);
  std::string body = name + '\0';
  Read r = read_all(
      h + body + envd::rest::tar_padding(body.size()) + with_data(file("short", 2), "hi") + envd::rest::tar_end(), 100);
  REQUIRE(r.error == "");
  REQUIRE(r.entries.size() == 1);
  CHECK(r.entries[0].name == name);
  CHECK(r.data[0] == "hi");
}
