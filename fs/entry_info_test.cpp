#include "fs/entry_info.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include <doctest/doctest.h>

#include "filesystem.pb.h"
#include "fs/fs_ops.h"

#include "tests/test_files.h"

using namespace envd::fs;
using namespace envd::testing;
namespace pb = ::filesystem;

namespace {

pb::EntryInfo info(const std::string& path) {
  IdNames names;
  pb::EntryInfo e;
  REQUIRE(entry_info_at(path, names, e) == 0);
  return e;
}

}  // namespace

TEST_CASE("entry info: Go FileMode.String of stat modes") {
  CHECK(go_file_mode_string(S_IFREG | 0644) == "-rw-r--r--");
  CHECK(go_file_mode_string(S_IFDIR | 0755) == "drwxr-xr-x");
  CHECK(go_file_mode_string(S_IFLNK | 0777) == "Lrwxrwxrwx");
  CHECK(go_file_mode_string(S_IFDIR | S_ISVTX | 0777) == "dtrwxrwxrwx");
  CHECK(go_file_mode_string(S_IFREG | S_ISUID | 0755) == "urwxr-xr-x");
  CHECK(go_file_mode_string(S_IFCHR | 0666) == "Dcrw-rw-rw-");
  CHECK(go_file_mode_string(S_IFBLK | 0660) == "Drw-rw----");
  CHECK(go_file_mode_string(S_IFIFO | 0644) == "prw-r--r--");
  CHECK(go_file_mode_string(S_IFSOCK | 0755) == "Srwxr-xr-x");
  CHECK(go_file_mode_string(S_IFDIR | S_ISGID | 0775) == "dgrwxrwxr-x");
  CHECK(go_file_mode_string(S_IFREG | S_ISUID | S_ISGID | S_ISVTX | 0) == "ugt---------");
  CHECK(go_file_mode_string(S_IFREG) == "----------");
}

TEST_CASE("entry info: basename as os.Lstat names it") {
  CHECK(go_basename("/") == "/");
  CHECK(go_basename("//") == "/");
  CHECK(go_basename("/a") == "a");
  CHECK(go_basename("/a/b/") == "b");
  CHECK(go_basename("/a/b//") == "b");
  CHECK(go_basename("rel") == "rel");
}

TEST_CASE("entry info: strict UTF-8") {
  CHECK(valid_utf8(""));
  CHECK(valid_utf8("plain"));
  CHECK(valid_utf8("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80"));
  CHECK_FALSE(valid_utf8("\xC3"));              // truncated
  CHECK_FALSE(valid_utf8("\xC0\xAF"));          // overlong
  CHECK_FALSE(valid_utf8("\xE0\x80\xAF"));      // overlong
  CHECK_FALSE(valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(valid_utf8("\xFF"));
  CHECK_FALSE(valid_utf8("a\x80"));
}

TEST_CASE("entry info: EvalSymlinks as Go's") {
  TempDir t;
  REQUIRE(::mkdir((t / "d").c_str(), 0755) == 0);
  REQUIRE(::mkdir((t / "d/sub").c_str(), 0755) == 0);
  write_file(t / "d/sub/f", "x");
  REQUIRE(::symlink("d/sub", (t / "rel").c_str()) == 0);
  REQUIRE(::symlink((t / "rel").c_str(), (t / "abs").c_str()) == 0);
  REQUIRE(::symlink("../sub/f", (t / "d/sub/up").c_str()) == 0);
  REQUIRE(::symlink("nowhere", (t / "broken").c_str()) == 0);
  REQUIRE(::symlink("loop2", (t / "loop1").c_str()) == 0);
  REQUIRE(::symlink("loop1", (t / "loop2").c_str()) == 0);

  CHECK(eval_symlinks(t / "abs").path == t / "d/sub");
  CHECK(eval_symlinks(t / "abs/f").path == t / "d/sub/f");
  CHECK(eval_symlinks(t / "abs/up").path == t / "d/sub/f");
  CHECK(eval_symlinks(t / "d/./sub/../sub/").path == t / "d/sub");
  CHECK(eval_symlinks("/").path == "/");

  auto broken = eval_symlinks(t / "broken");
  CHECK(broken.err == ENOENT);
  CHECK(broken.error == "lstat " + t.path + "/nowhere: no such file or directory");

  auto loop = eval_symlinks(t / "loop1");
  CHECK(loop.too_many_links);
  CHECK(loop.err == ELOOP);
  CHECK(loop.error == "EvalSymlinks: too many links");

  auto notdir = eval_symlinks(t / "d/sub/f/x");
  CHECK(notdir.err == ENOTDIR);
  CHECK(notdir.error == "not a directory");
}

TEST_CASE("entry info: regular files, directories, times, owners") {
  TempDir t;
  write_file(t / "f", "hello");
  REQUIRE(::chmod((t / "f").c_str(), 0640) == 0);
  const struct timespec times[2] = {{1, 0}, {1700000000, 123456789}};
  REQUIRE(::utimensat(AT_FDCWD, (t / "f").c_str(), times, 0) == 0);
  auto e = info(t / "f");
  CHECK(e.name() == "f");
  CHECK(e.path() == t / "f");
  CHECK(e.type() == pb::FILE_TYPE_FILE);
  CHECK(e.size() == 5);
  CHECK(e.mode() == 0640);
  CHECK(e.permissions() == "-rw-r-----");
  CHECK(e.owner() == "root");
  CHECK(e.group() == "root");
  REQUIRE(e.has_modified_time());
  CHECK(e.modified_time().seconds() == 1700000000);
  CHECK(e.modified_time().nanos() == 123456789);
  CHECK_FALSE(e.has_symlink_target());
  CHECK(e.metadata().empty());

  // An id without a name is shown as its number.
  REQUIRE(::chown((t / "f").c_str(), 4242, 4243) == 0);
  e = info(t / "f");
  CHECK(e.owner() == "4242");
  CHECK(e.group() == "4243");

  // Epoch zero: no modified_time (what the reference sends).
  const struct timespec zero[2] = {{0, 0}, {0, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (t / "f").c_str(), zero, 0) == 0);
  CHECK_FALSE(info(t / "f").has_modified_time());

  REQUIRE(::mkdir((t / "sticky").c_str(), 0777) == 0);
  REQUIRE(::chmod((t / "sticky").c_str(), 01777) == 0);
  e = info(t / "sticky/");
  CHECK(e.name() == "sticky");
  CHECK(e.path() == t / "sticky/");
  CHECK(e.type() == pb::FILE_TYPE_DIRECTORY);
  CHECK(e.mode() == 0777);  // permission bits only
  CHECK(e.permissions() == "dtrwxrwxrwx");

  write_file(t / "suid", "#!/bin/sh\n");
  REQUIRE(::chmod((t / "suid").c_str(), 04755) == 0);
  e = info(t / "suid");
  CHECK(e.mode() == 0755);
  CHECK(e.permissions() == "urwxr-xr-x");
}

TEST_CASE("entry info: owner and group names come from the users db, looked up once per id") {
  TempDir t;
  write_file(t / "passwd", "root:x:0:0:root:/root:/bin/sh\nalice:x:4242:4242::/home/alice:/bin/sh\n");
  write_file(t / "group", "root:x:0:\nstaff:x:4243:alice\n");
  write_file(t / "f", "");
  REQUIRE(::chown((t / "f").c_str(), 4242, 4243) == 0);
  IdNames names(t / "passwd", t / "group");
  pb::EntryInfo e;
  REQUIRE(entry_info_at(t / "f", names, e) == 0);
  CHECK(e.owner() == "alice");
  CHECK(e.group() == "staff");
  // Cached for the call: a user renamed meanwhile keeps the name this call saw first.
  write_file(t / "passwd", "root:x:0:0:root:/root:/bin/sh\nbob:x:4242:4242::/home/bob:/bin/sh\n");
  CHECK(names.user(4242) == "alice");
  CHECK(names.user(4244) == "4244");
}

TEST_CASE("entry info: symlinks report their final target; SYMLINK is never emitted") {
  TempDir t;
  write_file(t / "target", "0123456789");
  REQUIRE(::chmod((t / "target").c_str(), 0600) == 0);
  REQUIRE(::mkdir((t / "dir").c_str(), 0750) == 0);
  REQUIRE(::symlink("target", (t / "l1").c_str()) == 0);
  REQUIRE(::symlink("l1", (t / "l2").c_str()) == 0);  // chain
  REQUIRE(::symlink((t / "dir").c_str(), (t / "ldir").c_str()) == 0);
  REQUIRE(::symlink("nowhere", (t / "broken").c_str()) == 0);
  REQUIRE(::symlink("loop", (t / "loop").c_str()) == 0);

  auto e = info(t / "l2");
  CHECK(e.type() == pb::FILE_TYPE_FILE);
  CHECK(e.mode() == 0600);
  CHECK(e.size() == 2);  // the link text "l1"
  CHECK(e.permissions() == "Lrwxrwxrwx");
  CHECK(e.symlink_target() == t / "target");
  CHECK(e.path() == t / "l2");
  CHECK(e.name() == "l2");

  e = info(t / "ldir");
  CHECK(e.type() == pb::FILE_TYPE_DIRECTORY);
  CHECK(e.mode() == 0750);
  CHECK(e.symlink_target() == t / "dir");

  for (const char* name : {"broken", "loop"}) {
    CAPTURE(name);
    e = info(t / name);
    CHECK(e.type() == pb::FILE_TYPE_UNSPECIFIED);
    CHECK(e.mode() == 0);
    CHECK(e.permissions() == "Lrwxrwxrwx");
    CHECK(e.symlink_target() == t / name);  // unresolvable: its own path
  }
}

TEST_CASE("entry info: fifos, sockets and devices are UNSPECIFIED") {
  TempDir t;
  REQUIRE(::mkfifo((t / "fifo").c_str(), 0644) == 0);
  REQUIRE(::chmod((t / "fifo").c_str(), 0644) == 0);
  auto e = info(t / "fifo");
  CHECK(e.type() == pb::FILE_TYPE_UNSPECIFIED);
  CHECK(e.mode() == 0644);
  CHECK(e.permissions() == "prw-r--r--");

  int s = ::socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(s >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string sp = t / "sock";
  REQUIRE(sp.size() < sizeof addr.sun_path);
  std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", sp.c_str());
  REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  ::close(s);
  REQUIRE(::chmod(sp.c_str(), 0755) == 0);
  e = info(sp);
  CHECK(e.type() == pb::FILE_TYPE_UNSPECIFIED);
  CHECK(e.permissions() == "Srwxr-xr-x");

  e = info("/dev/null");
  CHECK(e.type() == pb::FILE_TYPE_UNSPECIFIED);
  CHECK(e.permissions() == "Dcrw-rw-rw-");

  // A symlink to a fifo: UNSPECIFIED, with the fifo's permission bits.
  REQUIRE(::symlink("fifo", (t / "lfifo").c_str()) == 0);
  e = info(t / "lfifo");
  CHECK(e.type() == pb::FILE_TYPE_UNSPECIFIED);
  CHECK(e.mode() == 0644);
}

TEST_CASE("entry info: metadata from user.e2b.* xattrs") {
  TempDir t;
  write_file(t / "f", "");
  if (::setxattr((t / "f").c_str(), "user.e2b.k", "v", 1, 0) != 0) {
    MESSAGE("skipped: user xattrs not supported on /tmp (" << std::strerror(errno) << ")");
    return;
  }
  REQUIRE(::setxattr((t / "f").c_str(), "user.e2b.unicode", "\xC3\xA9t\xC3\xA9", 5, 0) == 0);
  REQUIRE(::setxattr((t / "f").c_str(), "user.e2b.empty", "", 0, 0) == 0);
  REQUIRE(::setxattr((t / "f").c_str(), "user.e2b.binary", "\xFF\xFE", 2, 0) == 0);  // not UTF-8: skipped
  REQUIRE(::setxattr((t / "f").c_str(), "user.e2b.\xFF", "v", 1, 0) == 0);           // key not UTF-8: skipped
  REQUIRE(::setxattr((t / "f").c_str(), "user.other", "x", 1, 0) == 0);              // not e2b: hidden
  std::string big(3000, 'b');                                                        // ext4 keeps values up to a block
  REQUIRE(::setxattr((t / "f").c_str(), "user.e2b.big", big.data(), big.size(), 0) == 0);
  auto e = info(t / "f");
  CHECK(e.metadata_size() == 4);
  CHECK(e.metadata().at("k") == "v");
  CHECK(e.metadata().at("unicode") == "\xC3\xA9t\xC3\xA9");
  CHECK(e.metadata().at("empty") == "");
  CHECK(e.metadata().at("big") == big);

  // Followed through a symlink (path-following listxattr/getxattr).
  REQUIRE(::symlink("f", (t / "l").c_str()) == 0);
  CHECK(info(t / "l").metadata().at("k") == "v");
  // A broken link: no metadata, no error.
  REQUIRE(::symlink("nowhere", (t / "b").c_str()) == 0);
  CHECK(info(t / "b").metadata().empty());
}
