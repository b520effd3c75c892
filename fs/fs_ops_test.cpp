#include "fs/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "filesystem.pb.h"

#include "tests/test_files.h"

using namespace envd::fs;
using namespace envd::testing;
using envd::rpc::Code;
namespace pb = ::filesystem;

namespace {

bool exists(const std::string& p) {
  struct stat st {};
  return ::lstat(p.c_str(), &st) == 0;
}

struct stat lstat_of(const std::string& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st;
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    while (dirent* de = ::readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") out.push_back(n);
    }
    ::closedir(d);
  }
  return out;
}

std::vector<std::string> listed_paths(const pb::ListDirResponse& r) {
  std::vector<std::string> out;
  for (const auto& e : r.entries()) out.push_back(e.path());
  return out;
}

}  // namespace

TEST_CASE("fs ops: ensure_dirs creates missing parents owned by the user, leaves existing ones") {
  TempDir t;
  REQUIRE(::mkdir((t / "old").c_str(), 0700) == 0);
  auto r = ensure_dirs(t / "old/a/b", 4242, 4243);
  REQUIRE(r.ok());
  auto old = lstat_of(t / "old");
  CHECK(old.st_uid == 0);
  CHECK((old.st_mode & 0777) == 0700);
  for (const char* p : {"old/a", "old/a/b"}) {
    auto st = lstat_of(t / p);
    CHECK(S_ISDIR(st.st_mode));
    CHECK(st.st_uid == 4242);
    CHECK(st.st_gid == 4243);
  }
  CHECK(ensure_dirs(t / "old/a/b", 1, 1).ok());  // idempotent; owners unchanged
  CHECK(lstat_of(t / "old/a/b").st_uid == 4242);
  CHECK(ensure_dirs("", 0, 0).ok());

  write_file(t / "file", "x");
  r = ensure_dirs(t / "file/sub", 0, 0);
  CHECK(r.err == ENOTDIR);
  CHECK(r.error == "path is a file: " + t.path + "/file");

  // A dangling symlink in the way: mkdir says EEXIST (taken as a lost race), then chown fails.
  REQUIRE(::symlink("nowhere", (t / "dangling").c_str()) == 0);
  r = ensure_dirs(t / "dangling", 0, 0);
  CHECK(r.error == "failed to chown directory: chown " + t.path + "/dangling: no such file or directory");

  REQUIRE(::symlink("loop", (t / "loop").c_str()) == 0);
  r = ensure_dirs(t / "loop/x", 0, 0);
  CHECK(r.error == "failed to stat directory: stat " + t.path + "/loop: too many levels of symbolic links");

  r = ensure_dirs("/proc/envd-no-such/x", 0, 0);
  CHECK(r.error == "failed to create directory: mkdir /proc/envd-no-such: no such file or directory");
}

TEST_CASE("fs ops: go_dir is filepath.Dir") {
  CHECK(go_dir("/a/b") == "/a");
  CHECK(go_dir("/a/b/") == "/a/b");
  CHECK(go_dir("/a") == "/");
  CHECK(go_dir("a") == ".");
  CHECK(go_dir("/a/../b/c") == "/b");
}

TEST_CASE("fs ops: Stat codes and messages") {
  TempDir t;
  write_file(t / "f", "x");
  IdNames names;
  pb::EntryInfo e;
  auto st = stat_entry(t / "missing", names, e);
  CHECK(st.code == Code::not_found);
  CHECK(st.message == "file not found: lstat " + t.path + "/missing: no such file or directory");
  st = stat_entry(t / "f/x", names, e);
  CHECK(st.code == Code::internal);
  CHECK(st.message == "error getting file info: lstat " + t.path + "/f/x: not a directory");
  st = stat_entry(t.path + std::string("/a\0b", 4), names, e);
  CHECK(st.code == Code::internal);
  CHECK(stat_entry(t / "f", names, e).ok());
  CHECK(e.name() == "f");
}

TEST_CASE("fs ops: ListDir walks in lexical pre-order to the depth asked") {
  TempDir t;
  for (const char* d : {"o", "o/a", "o/a/aa", "o/a/aa/aaa", "o/b", "o/b/bb"})
    REQUIRE(::mkdir((t / d).c_str(), 0755) == 0);
  for (const char* f : {"o/c", "o/a/z", "o/b/y", "o/a/aa/aaa/q"}) write_file(t / f, "");
  REQUIRE(::symlink((t / "o/b").c_str(), (t / "o/lb").c_str()) == 0);
  REQUIRE(::symlink("o", (t / "lo").c_str()) == 0);
  IdNames names;

  pb::ListDirResponse r;
  REQUIRE(list_dir(t / "o", 0, names, r).ok());  // depth 0 → 1
  CHECK(listed_paths(r) == std::vector<std::string>{t / "o/a", t / "o/b", t / "o/c", t / "o/lb"});

  r.Clear();
  REQUIRE(list_dir(t / "o", 2, names, r).ok());
  CHECK(listed_paths(r) == std::vector<std::string>{t / "o/a", t / "o/a/aa", t / "o/a/z", t / "o/b", t / "o/b/bb",
                                                    t / "o/b/y", t / "o/c", t / "o/lb"});

  r.Clear();
  REQUIRE(list_dir(t / "o", 100, names, r).ok());
  CHECK(listed_paths(r) == std::vector<std::string>{t / "o/a", t / "o/a/aa", t / "o/a/aa/aaa", t / "o/a/aa/aaa/q",
                                                    t / "o/a/z", t / "o/b", t / "o/b/bb", t / "o/b/y", t / "o/c",
                                                    t / "o/lb"});
  // The symlinked directory is listed (with its target's type) and not descended.
  CHECK(r.entries(9).type() == pb::FILE_TYPE_DIRECTORY);
  CHECK(r.entries(9).symlink_target() == t / "o/b");

  // A symlinked root lists the target's content under the requested path; the requested path is
  // joined and cleaned as Go's filepath.Join does.
  r.Clear();
  REQUIRE(list_dir(t / "lo/", 1, names, r).ok());
  CHECK(listed_paths(r) == std::vector<std::string>{t / "lo/a", t / "lo/b", t / "lo/c", t / "lo/lb"});
  r.Clear();
  REQUIRE(list_dir(t / "o/../o/a", 1, names, r).ok());
  CHECK(listed_paths(r) == std::vector<std::string>{t / "o/a/aa", t / "o/a/z"});
  CHECK(r.entries(0).name() == "aa");
}

TEST_CASE("fs ops: ListDir errors") {
  TempDir t;
  write_file(t / "f", "");
  REQUIRE(::symlink("f", (t / "lf").c_str()) == 0);
  REQUIRE(::symlink("nowhere", (t / "broken").c_str()) == 0);
  REQUIRE(::symlink("loop2", (t / "loop1").c_str()) == 0);
  REQUIRE(::symlink("loop1", (t / "loop2").c_str()) == 0);
  IdNames names;
  pb::ListDirResponse r;
  auto st = list_dir(t / "missing", 1, names, r);
  CHECK(st.code == Code::not_found);
  CHECK(st.message == "path not found: lstat " + t.path + "/missing: no such file or directory");
  st = list_dir(t / "broken", 1, names, r);
  CHECK(st.code == Code::not_found);
  CHECK(st.message == "path not found: lstat " + t.path + "/nowhere: no such file or directory");
  st = list_dir(t / "loop1", 1, names, r);
  CHECK(st.code == Code::failed_precondition);
  CHECK(st.message == "cyclic symlink or chain >255 links at \"" + t.path + "/loop1\"");
  // The path is quoted as Go's %q.
  REQUIRE(::symlink("q\"\tü", (t / "q\"\tü").c_str()) == 0);
  st = list_dir(t / "q\"\tü", 1, names, r);
  CHECK(st.code == Code::failed_precondition);
  CHECK(st.message == "cyclic symlink or chain >255 links at \"" + t.path + "/q\\\"\\tü\"");
  st = list_dir(t / "lf", 1, names, r);
  CHECK(st.code == Code::invalid_argument);
  CHECK(st.message == "path is not a directory: " + t.path + "/f");
  st = list_dir(t / "f/x", 1, names, r);
  CHECK(st.code == Code::internal);
  CHECK(st.message == "error resolving symlink: not a directory");
  CHECK(r.entries_size() == 0);
}

TEST_CASE("fs ops: ListDir leaves out names that are not UTF-8") {
  TempDir t;
  write_file(t / "bad\xFF\xFEname", "");
  REQUIRE(::mkdir((t / "baddir\xFF").c_str(), 0755) == 0);
  write_file(t / "baddir\xFF/inner", "");
  write_file(t / "good \xE2\x9C\x93", "");
  REQUIRE(::symlink("bad\xFF\xFEname", (t / "link").c_str()) == 0);
  IdNames names;
  pb::ListDirResponse r;
  REQUIRE(list_dir(t.path, 5, names, r).ok());
  CHECK(listed_paths(r) == std::vector<std::string>{t / "good \xE2\x9C\x93", t / "link"});
  // The link resolves to a name that cannot be sent: shown as unresolvable (its own path).
  CHECK(r.entries(1).symlink_target() == t / "link");
  CHECK(r.entries(1).type() == pb::FILE_TYPE_FILE);
}

TEST_CASE("fs ops: ListDir stops when cancelled") {
  TempDir t;
  for (int i = 0; i < 600; ++i) write_file(t / ("f" + std::to_string(i)), "");
  auto flag = std::make_shared<std::atomic<bool>>(true);
  IdNames names;
  pb::ListDirResponse r;
  CHECK(list_dir(t.path, 1, names, r, flag).code == Code::canceled);
}

TEST_CASE("fs ops: MakeDir") {
  TempDir t;
  write_file(t / "f", "");
  IdNames names;
  pb::EntryInfo e;
  auto st = make_dir(t / "new/a/b/", 4242, 4243, names, e);
  REQUIRE(st.ok());
  CHECK(e.name() == "b");
  CHECK(e.path() == t / "new/a/b/");
  CHECK(e.type() == pb::FILE_TYPE_DIRECTORY);
  CHECK(e.owner() == "4242");
  CHECK(lstat_of(t / "new").st_uid == 4242);

  st = make_dir(t / "new/a", 0, 0, names, e);
  CHECK(st.code == Code::already_exists);
  CHECK(st.message == "directory already exists: " + t.path + "/new/a");
  st = make_dir(t / "f", 0, 0, names, e);
  CHECK(st.code == Code::invalid_argument);
  CHECK(st.message == "path already exists but it is not a directory: " + t.path + "/f");
  st = make_dir(t / "f/x/y", 0, 0, names, e);
  CHECK(st.code == Code::internal);
  CHECK(st.message == "error getting file info: stat " + t.path + "/f/x/y: not a directory");
}

TEST_CASE("fs ops: Move on one filesystem") {
  TempDir t;
  write_file(t / "f", "data");
  REQUIRE(::mkdir((t / "d").c_str(), 0755) == 0);
  write_file(t / "d/inner", "i");
  REQUIRE(::mkdir((t / "full").c_str(), 0755) == 0);
  write_file(t / "full/x", "");
  IdNames names;
  pb::EntryInfo e;

  REQUIRE(move(t / "f", t / "p/q/g", 4242, 4243, names, e).ok());
  CHECK(e.path() == t / "p/q/g");
  CHECK(e.owner() == "root");               // the moved entry keeps its owner
  CHECK(lstat_of(t / "p").st_uid == 4242);  // created parents belong to the user
  CHECK(read_file(t / "p/q/g") == "data");
  CHECK_FALSE(exists(t / "f"));

  REQUIRE(move(t / "d", t / "d2", 0, 0, names, e).ok());
  CHECK(read_file(t / "d2/inner") == "i");

  auto st = move(t / "missing", t / "x", 0, 0, names, e);
  CHECK(st.code == Code::not_found);
  CHECK(st.message ==
        "source file not found: rename " + t.path + "/missing " + t.path + "/x: no such file or directory");
  // Go's os.Rename refuses any existing directory as the destination, even an empty one.
  REQUIRE(::mkdir((t / "empty").c_str(), 0755) == 0);
  for (const char* to : {"full", "empty", "d2"}) {
    st = move(t / "d2", t / to, 0, 0, names, e);
    CHECK(st.code == Code::internal);
    CHECK(st.message == "error renaming: rename " + t.path + "/d2 " + t.path + "/" + to + ": file exists");
  }
  st = move(t / "missing", t / "empty", 0, 0, names, e);
  CHECK(st.code == Code::not_found);
  // filepath.Dir parents: "x/../y" needs only its cleaned parent, so mkdir of it fails.
  st = make_dir(t / "x/../y", 0, 0, names, e);
  CHECK(st.message == "failed to create directory: mkdir " + t.path + "/x/../y: no such file or directory");
  st = move(t / "d2", t / "p/q/g/x", 0, 0, names, e);
  CHECK(st.code == Code::internal);
  CHECK(st.message == "path is a file: " + t.path + "/p/q/g");
}

TEST_CASE("fs ops: Remove is RemoveAll") {
  TempDir t;
  REQUIRE(::mkdir((t / "tree").c_str(), 0755) == 0);
  REQUIRE(::mkdir((t / "tree/sub").c_str(), 0555) == 0);
  write_file(t / "tree/sub/f", "");                           // root writes into 0555 anyway
  REQUIRE(::symlink("/etc", (t / "tree/etc").c_str()) == 0);  // removed, never followed
  for (int i = 0; i < 2100; ++i) write_file(t / ("tree/n" + std::to_string(i)), "");
  CHECK(remove(t / "tree").ok());
  CHECK_FALSE(exists(t / "tree"));
  CHECK(exists("/etc/passwd"));
  CHECK(remove(t / "missing").ok());
  CHECK(remove(t / "missing/deeper").ok());
  write_file(t / "f", "");
  auto st = remove(t / "f/x");
  CHECK(st.code == Code::internal);
  CHECK(st.message == "error removing file or directory: unlinkat " + t.path + "/f/x: not a directory");
  st = remove(t.path + "/.");
  CHECK(st.message == "error removing file or directory: RemoveAll " + t.path + "/.: invalid argument");
  CHECK(exists(t.path));
}

// --- Across devices ------------------------------------------------------------------------------

namespace {

// A tmpfs mounted for the test, or an explanation why there is none.
struct TmpfsMount {
  TempDir dir;
  bool mounted = false;
  std::string why;
  TmpfsMount() {
    if (::mount("tmpfs", dir.path.c_str(), "tmpfs", 0, "size=64m") == 0) {
      mounted = true;
    } else {
      why = std::string("mount -t tmpfs: ") + std::strerror(errno);
    }
  }
  ~TmpfsMount() {
    if (mounted) ::umount2(dir.path.c_str(), MNT_DETACH);
  }
};

bool different_devices(const std::string& a, const std::string& b) {
  struct stat sa {
  }, sb{};
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev != sb.st_dev;
}

std::vector<std::string> leftovers(const std::string& dir) {
  std::vector<std::string> out;
  for (auto& n : names_in(dir))
    if (n.rfind(".envd-move-", 0) == 0) out.push_back(n);
  return out;
}

}  // namespace

TEST_CASE("fs ops: Move across devices keeps mode, owner, times, xattrs, links and special files") {
  TmpfsMount mnt;
  if (!mnt.mounted) {
    MESSAGE("skipped: " << mnt.why);
    return;
  }
  TempDir src_base;  // on /tmp's filesystem
  REQUIRE(different_devices(src_base.path, mnt.dir.path));
  const std::string src = src_base / "tree";
  REQUIRE(::mkdir(src.c_str(), 0750) == 0);
  REQUIRE(::mkdir((src + "/sub").c_str(), 0700) == 0);
  write_file(src + "/sub/file", std::string(3 << 20, 'z'));  // several copy chunks
  REQUIRE(::chmod((src + "/sub/file").c_str(), 04751) == 0);
  REQUIRE(::chown((src + "/sub/file").c_str(), 4242, 4243) == 0);
  REQUIRE(::chmod((src + "/sub/file").c_str(), 04751) == 0);  // chown cleared setuid
  REQUIRE(::link((src + "/sub/file").c_str(), (src + "/hardlink").c_str()) == 0);
  REQUIRE(::symlink("sub/../sub/file", (src + "/rel-link").c_str()) == 0);
  REQUIRE(::mkfifo((src + "/fifo").c_str(), 0620) == 0);
  REQUIRE(::chmod((src + "/fifo").c_str(), 0620) == 0);
  REQUIRE(::mknod((src + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  const bool xattrs = ::setxattr((src + "/sub/file").c_str(), "user.e2b.k", "v", 1, 0) == 0 &&
                      ::setxattr(src.c_str(), "user.note", "dir", 3, 0) == 0;
  const struct timespec times[2] = {{1600000000, 1}, {1700000000, 123456789}};
  REQUIRE(::utimensat(AT_FDCWD, (src + "/sub/file").c_str(), times, 0) == 0);
  REQUIRE(::utimensat(AT_FDCWD, (src + "/sub").c_str(), times, 0) == 0);
  REQUIRE(::utimensat(AT_FDCWD, (src + "/rel-link").c_str(), times, AT_SYMLINK_NOFOLLOW) == 0);

  const std::string dst = mnt.dir / "moved/here";
  IdNames names;
  pb::EntryInfo e;
  auto st = move(src, dst, 0, 0, names, e);
  REQUIRE_MESSAGE(st.ok(), st.message);
  CHECK(e.path() == dst);
  CHECK(e.type() == pb::FILE_TYPE_DIRECTORY);
  CHECK_FALSE(exists(src));
  CHECK(leftovers(mnt.dir / "moved").empty());

  auto f = lstat_of(dst + "/sub/file");
  CHECK((f.st_mode & 07777) == 04751);
  CHECK(f.st_uid == 4242);
  CHECK(f.st_gid == 4243);
  CHECK(f.st_mtim.tv_sec == 1700000000);
  CHECK(f.st_mtim.tv_nsec == 123456789);
  CHECK(f.st_nlink == 2);
  CHECK(lstat_of(dst + "/hardlink").st_ino == f.st_ino);
  CHECK(read_file(dst + "/sub/file") == std::string(3 << 20, 'z'));
  auto sub = lstat_of(dst + "/sub");
  CHECK((sub.st_mode & 07777) == 0700);
  CHECK(sub.st_mtim.tv_sec == 1700000000);
  CHECK((lstat_of(dst).st_mode & 07777) == 0750);

  char buf[64] = {};
  REQUIRE(::readlink((dst + "/rel-link").c_str(), buf, sizeof buf - 1) > 0);
  CHECK(std::string(buf) == "sub/../sub/file");  // verbatim
  CHECK(lstat_of(dst + "/rel-link").st_mtim.tv_nsec == 123456789);
  auto fifo = lstat_of(dst + "/fifo");
  CHECK(S_ISFIFO(fifo.st_mode));
  CHECK((fifo.st_mode & 0777) == 0620);
  auto dev = lstat_of(dst + "/null");
  CHECK(S_ISCHR(dev.st_mode));
  CHECK(dev.st_rdev == makedev(1, 3));

  if (xattrs) {
    char v[8] = {};
    ssize_t n = ::getxattr((dst + "/sub/file").c_str(), "user.e2b.k", v, sizeof v);
    if (n < 0 && errno == ENOTSUP) {
      MESSAGE("xattrs not checked: this kernel's tmpfs has no user xattrs");
    } else {
      CHECK(std::string(v, n > 0 ? n : 0) == "v");
      n = ::getxattr(dst.c_str(), "user.note", v, sizeof v);
      CHECK(std::string(v, n > 0 ? n : 0) == "dir");
    }
  } else {
    MESSAGE("xattrs not checked: /tmp has no user xattrs");
  }
}

TEST_CASE("fs ops: a failed or cancelled move across devices leaves the source and no copy") {
  TmpfsMount mnt;
  if (!mnt.mounted) {
    MESSAGE("skipped: " << mnt.why);
    return;
  }
  TempDir src_base;
  const std::string src = src_base / "tree";
  REQUIRE(::mkdir(src.c_str(), 0755) == 0);
  write_file(src + "/a", "a");
  write_file(src_base / "file", "f");
  REQUIRE(::mkdir((mnt.dir / "full").c_str(), 0755) == 0);
  write_file(mnt.dir / "full/x", "");
  write_file(mnt.dir / "plain", "p");
  IdNames names;
  pb::EntryInfo e;

  // Go's os.Rename: never onto an existing directory; then rename(2)'s rules (a directory onto a
  // file: not a directory).
  auto st = move(src, mnt.dir / "full", 0, 0, names, e);
  CHECK(st.code == Code::internal);
  CHECK(st.message == "error renaming: rename " + src + " " + mnt.dir.path + "/full: file exists");
  st = move(src, mnt.dir / "plain", 0, 0, names, e);
  CHECK(st.message == "error renaming: rename " + src + " " + mnt.dir.path + "/plain: not a directory");
  st = move(src_base / "file", mnt.dir / "full", 0, 0, names, e);
  CHECK(st.message == "error renaming: rename " + src_base.path + "/file " + mnt.dir.path + "/full: file exists");

  auto flag = std::make_shared<std::atomic<bool>>(true);
  st = move(src, mnt.dir / "new", 0, 0, names, e, flag);
  CHECK(st.code == Code::canceled);
  CHECK(read_file(src + "/a") == "a");
  CHECK(read_file(src_base / "file") == "f");
  CHECK_FALSE(exists(mnt.dir / "new"));
  CHECK(leftovers(mnt.dir.path).empty());

  // A file replaces a file, and a symlink even to a directory; a directory goes to a new name.
  write_file(src_base / "file2", "f2");
  REQUIRE(move(src_base / "file", mnt.dir / "plain", 0, 0, names, e).ok());
  CHECK(read_file(mnt.dir / "plain") == "f");
  REQUIRE(::symlink((mnt.dir / "full").c_str(), (mnt.dir / "link").c_str()) == 0);
  REQUIRE(move(src_base / "file2", mnt.dir / "link", 0, 0, names, e).ok());
  CHECK(read_file(mnt.dir / "link") == "f2");
  CHECK(S_ISREG(lstat_of(mnt.dir / "link").st_mode));
  REQUIRE(move(src, mnt.dir / "new", 0, 0, names, e).ok());
  CHECK(read_file(mnt.dir / "new/a") == "a");
  CHECK_FALSE(exists(src));
  CHECK(leftovers(mnt.dir.path).empty());
}
