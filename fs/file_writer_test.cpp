#include "fs/file_writer.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "tests/test_files.h"

using namespace envd::fs;
using namespace envd::testing;

namespace {

constexpr uid_t kUid = 4321;
constexpr gid_t kGid = 4322;

struct stat lstat_of(const std::string& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st;
}

std::optional<WriteFailure> upload(const std::string& p, const std::string& content, WriterOptions opts,
                                   const Metadata& md = {}) {
  FileWriter w;
  if (auto f = w.open(p, std::move(opts))) return f;
  if (auto f = w.write(content)) return f;
  return w.commit(md);
}

Metadata md_of(const std::string& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  auto md = read_metadata(fd);
  ::close(fd);
  return md;
}

WriterOptions in_place(std::optional<std::uint64_t> len = std::nullopt) {
  WriterOptions o;
  o.uid = kUid;
  o.gid = kGid;
  o.known_length = len;
  o.content_length = len;
  return o;
}
WriterOptions atomic(std::optional<std::uint64_t> len = std::nullopt) {
  auto o = in_place(len);
  o.atomic = true;
  return o;
}

}  // namespace

TEST_CASE("metadata: headers, first value, empty key skipped") {
  auto md = metadata_from_headers({{"x-metadata-foo", "1"},
                                   {"content-type", "x"},
                                   {"x-metadata-foo", "2"},
                                   {"x-metadata-", "v"},
                                   {"x-metadata-b", ""}});
  REQUIRE(md.size() == 2);
  CHECK(md[0] == std::pair<std::string, std::string>{"foo", "1"});
  CHECK(md[1] == std::pair<std::string, std::string>{"b", ""});
}

TEST_CASE("metadata: validation messages as envd words them") {
  CHECK_FALSE(validate_metadata({{"a", "b"}}));
  CHECK(*validate_metadata({{"foo", "b\xc3\xa4r"}}) ==
        "metadata value for key \"foo\" contains non-printable-ASCII byte 0xc3 at offset 1");
  CHECK(*validate_metadata({{std::string(247, 'k'), "v"}}) ==
        "metadata key \"" + std::string(247, 'k') + "\" exceeds 246 bytes");
  CHECK_FALSE(validate_metadata({{std::string(246, 'k'), "v"}}));
  CHECK(*validate_metadata({{"k", std::string(5000, 'v')}}) == "total metadata size 5010 exceeds 4096 bytes");
  // exactly at the bound: 9 + 1 + 4086 = 4096
  CHECK_FALSE(validate_metadata({{"k", std::string(4086, 'v')}}));
  CHECK(*validate_metadata({{"", "v"}}) == "metadata key must not be empty");
  // Keys are quoted as Go's %q does: printable Unicode kept, \t named, invalid UTF-8 as \x.
  CHECK(*validate_metadata({{"cl\xc3\xa9", "v"}}) ==
        "metadata key \"cl\xc3\xa9\" contains non-printable-ASCII byte 0xc3 at offset 2");
  CHECK(*validate_metadata({{"a\tb", "v"}}) ==
        "metadata key \"a\\tb\" contains non-printable-ASCII byte 0x09 at offset 1");
  CHECK(*validate_metadata({{"\xff", "v"}}) ==
        "metadata key \"\\xff\" contains non-printable-ASCII byte 0xff at offset 0");
}

TEST_CASE("writer in place: new file owned by the user, umask mode, metadata replaced on overwrite") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  auto p = fs.path("a.txt");
  REQUIRE_FALSE(upload(p, "hello", in_place(), {{"foo", "bar"}, {"x", "1"}}));
  auto st = lstat_of(p);
  CHECK(st.st_uid == kUid);
  CHECK(st.st_gid == kGid);
  CHECK((st.st_mode & 07777) == (0666 & ~process_umask()));
  CHECK(read_file(p) == "hello");
  CHECK(md_of(p) == Metadata{{"foo", "bar"}, {"x", "1"}});

  // Overwrite: same inode (watchers see a write on the file's own name), stale key gone.
  ::chmod(p.c_str(), 0600);
  REQUIRE_FALSE(upload(p, "hi", in_place(2), {{"x", "2"}}));
  auto st2 = lstat_of(p);
  CHECK(st2.st_ino == st.st_ino);
  CHECK((st2.st_mode & 07777) == 0600);
  CHECK(read_file(p) == "hi");
  CHECK(md_of(p) == Metadata{{"x", "2"}});
  // No metadata at all clears it, other xattrs stay.
  REQUIRE(::setxattr(p.c_str(), "user.other", "o", 1, 0) == 0);
  REQUIRE_FALSE(upload(p, "", in_place()));
  CHECK(md_of(p).empty());
  CHECK(::getxattr(p.c_str(), "user.other", nullptr, 0) == 1);
  CHECK(read_file(p).empty());
}

TEST_CASE("writer in place: a symlinked target is written through; directories and FIFOs") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  write_file(fs.path("real"), "old");
  REQUIRE(::symlink("real", fs.path("link").c_str()) == 0);
  REQUIRE_FALSE(upload(fs.path("link"), "new", in_place()));
  CHECK(read_file(fs.path("real")) == "new");
  CHECK(S_ISLNK(lstat_of(fs.path("link")).st_mode));

  REQUIRE(::mkdir(fs.path("d").c_str(), 0755) == 0);
  auto f = upload(fs.path("d"), "x", in_place());
  REQUIRE(f);
  CHECK(f->status == 400);
  CHECK(f->message == "path is a directory: " + fs.path("d"));
  f = upload(fs.path("d/."), "x", in_place());
  REQUIRE(f);
  CHECK(f->status == 400);

  // A FIFO nobody reads: an error, not a pool thread blocked forever.
  REQUIRE(::mkfifo(fs.path("fifo").c_str(), 0644) == 0);
  f = upload(fs.path("fifo"), "x", in_place());
  REQUIRE(f);
  CHECK(f->status == 500);
  CHECK(f->message.find("error opening file: open " + fs.path("fifo")) == 0);
}

TEST_CASE("writer in place, known length: no room → 507 before anything of the old content goes") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  auto p = fs.path("keep.txt");
  std::string old(100 * 1024, 'o');
  write_file(p, old);
  auto ino = lstat_of(p).st_ino;
  fs.fill("filler", 64 * 1024);
  auto f = upload(p, std::string(400 * 1024, 'n'), in_place(400 * 1024));
  REQUIRE(f);
  CHECK(f->status == 507);
  CHECK(f->message == "attempted to write 409600 bytes: not enough disk space available");
  CHECK(read_file(p) == old);
  CHECK(lstat_of(p).st_ino == ino);
  // A new file that does not fit is not left behind empty.
  f = upload(fs.path("new.txt"), std::string(400 * 1024, 'n'), in_place(400 * 1024));
  REQUIRE(f);
  CHECK(f->status == 507);
  CHECK(fs.entries() == std::set<std::string>{"filler", "keep.txt"});
  // What fits once the old content is dropped is written (old 100 KiB + 64 KiB free ≥ 150 KiB).
  REQUIRE_FALSE(upload(p, std::string(150 * 1024, 'n'), in_place(150 * 1024)));
  CHECK(read_file(p) == std::string(150 * 1024, 'n'));
}

TEST_CASE("writer in place, unknown length: disk full leaves a prefix of the new content") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  auto p = fs.path("t.txt");
  write_file(p, std::string(8192, 'o'));
  fs.fill("filler", 64 * 1024);
  std::string content(400 * 1024, 'n');
  for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>('a' + i % 26);
  auto f = upload(p, content, in_place());
  REQUIRE(f);
  CHECK(f->status == 507);
  CHECK(f->message == "not enough disk space available");
  auto now = read_file(p);
  CHECK(now.size() < content.size());
  CHECK(content.compare(0, now.size(), now) == 0);
}

TEST_CASE("writer atomic: new inode, old content until commit, no temp file after abort or disk full") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  auto p = fs.path("a.bin");
  write_file(p, "old content");
  REQUIRE(::chown(p.c_str(), 0, 0) == 0);
  REQUIRE(::chmod(p.c_str(), 04750) == 0);
  auto before = lstat_of(p);
  {
    FileWriter w;
    REQUIRE_FALSE(w.open(p, atomic()));
    REQUIRE_FALSE(w.write("new "));
    CHECK(read_file(p) == "old content");
    // client gone: destroyed without commit
  }
  CHECK(read_file(p) == "old content");
  CHECK(fs.entries() == std::set<std::string>{"a.bin"});

  REQUIRE_FALSE(upload(p, "new content", atomic(), {{"k", "v"}}));
  auto after = lstat_of(p);
  CHECK(after.st_ino != before.st_ino);
  CHECK(after.st_uid == kUid);
  CHECK((after.st_mode & 07777) == 0750);  // owner changed: setuid dropped, the rest kept
  CHECK(read_file(p) == "new content");
  CHECK(md_of(p) == Metadata{{"k", "v"}});
  CHECK(fs.entries() == std::set<std::string>{"a.bin"});

  // Same owner: setuid stays.
  REQUIRE(::chmod(p.c_str(), 04750) == 0);
  REQUIRE_FALSE(upload(p, "again", atomic()));
  CHECK((lstat_of(p).st_mode & 07777) == 04750);

  // Disk full, known or unknown length: the old content stays, no temp file.
  fs.fill("filler", 64 * 1024);
  auto f = upload(p, std::string(400 * 1024, 'n'), atomic(400 * 1024));
  REQUIRE(f);
  CHECK(f->status == 507);
  f = upload(p, std::string(400 * 1024, 'n'), atomic());
  REQUIRE(f);
  CHECK(f->status == 507);
  CHECK(read_file(p) == "again");
  CHECK(fs.entries() == std::set<std::string>{"a.bin", "filler"});

  // A new file, atomically.
  ::unlink(fs.path("filler").c_str());
  REQUIRE_FALSE(upload(fs.path("fresh"), "x", atomic()));
  CHECK((lstat_of(fs.path("fresh")).st_mode & 07777) == (0666 & ~process_umask()));
}

TEST_CASE("writer atomic: refuses where a rename would change what the path is") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  write_file(fs.path("f"), "old");
  REQUIRE(::link(fs.path("f").c_str(), fs.path("f2").c_str()) == 0);
  auto f = upload(fs.path("f"), "new", atomic());
  REQUIRE(f);
  CHECK(f->status == 400);
  CHECK(f->message.find("has 2 hard links") != std::string::npos);
  REQUIRE(::mkfifo(fs.path("fifo").c_str(), 0644) == 0);
  f = upload(fs.path("fifo"), "new", atomic());
  REQUIRE(f);
  CHECK(f->status == 400);
  CHECK(f->message.find("it is a named pipe, not a regular file") != std::string::npos);
  REQUIRE(::symlink("f", fs.path("ln").c_str()) == 0);
  f = upload(fs.path("ln"), "new", atomic());
  REQUIRE(f);
  CHECK(f->message.find("a symbolic link") != std::string::npos);
  REQUIRE(::mkdir(fs.path("d").c_str(), 0755) == 0);
  f = upload(fs.path("d"), "new", atomic());
  REQUIRE(f);
  CHECK(f->message == "path is a directory: " + fs.path("d"));
  CHECK(read_file(fs.path("f")) == "old");
  CHECK(fs.entries() == std::set<std::string>{"f", "f2", "fifo", "ln", "d"});
}

TEST_CASE("writer atomic: create-only and preconditions, checked again at commit") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  auto p = fs.path("c");
  auto only = atomic();
  only.create_only = true;
  REQUIRE_FALSE(upload(p, "first", only));
  auto f = upload(p, "second", only);
  REQUIRE(f);
  CHECK(f->status == 412);
  CHECK(read_file(p) == "first");

  // Created by someone else between open and commit.
  auto q = fs.path("q");
  {
    FileWriter w;
    REQUIRE_FALSE(w.open(q, only));
    REQUIRE_FALSE(w.write("mine"));
    write_file(q, "theirs");
    auto late = w.commit({});
    REQUIRE(late);
    CHECK(late->status == 412);
  }
  CHECK(read_file(q) == "theirs");
  CHECK(fs.entries() == std::set<std::string>{"c", "q"});

  // A precondition sees the current file at open and again at commit.
  int calls = 0;
  auto cond = atomic();
  ino_t seen = 0;
  cond.precondition = [&](const struct stat* st) -> std::optional<WriteFailure> {
    ++calls;
    if (st) seen = st->st_ino;
    if (calls == 2) return WriteFailure{412, "changed"};
    return std::nullopt;
  };
  f = upload(p, "third", cond);
  REQUIRE(f);
  CHECK(f->status == 412);
  CHECK(calls == 2);
  CHECK(seen == lstat_of(p).st_ino);
  CHECK(read_file(p) == "first");
}

TEST_CASE("writer atomic: parallel writers of one path each land whole") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  auto p = fs.path("race");
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&, i] { CHECK_FALSE(upload(p, std::string(4096, static_cast<char>('a' + i)), atomic())); });
  for (auto& t : threads) t.join();
  auto now = read_file(p);
  REQUIRE(now.size() == 4096);
  CHECK(now == std::string(4096, now[0]));
  CHECK(fs.entries() == std::set<std::string>{"race"});
}
