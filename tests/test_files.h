#pragma once
// Files and directories for unit tests: a temporary directory removed on exit, whole-file read and
// write, and a small tmpfs of the test's own (needs root) where "disk full" is real and cheap.
#include <dirent.h>
#include <doctest/doctest.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

namespace envd::testing {

struct TempDir {
  std::string path;
  explicit TempDir(const char* base = "/tmp") {
    std::string tmpl = std::string(base) + "/envd-test-XXXXXX";
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& name) const { return path + "/" + name; }
};

inline void write_file(const std::string& p, const std::string& content) {
  std::ofstream(p, std::ios::binary) << content;
}

inline std::string read_file(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A 1 MiB tmpfs mounted on a fresh directory; unmounted and removed on exit.
struct SmallTmpfs {
  std::string dir;
  bool mounted = false;
  std::string why_not;

  SmallTmpfs() {
    char tmpl[] = "/tmp/envd-tmpfs-XXXXXX";
    if (!::mkdtemp(tmpl)) {
      why_not = std::string("mkdtemp: ") + std::strerror(errno);
      return;
    }
    dir = tmpl;
    if (::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m,mode=0755") != 0) {
      why_not = std::string("mount -t tmpfs -o size=1m: ") + std::strerror(errno);
      return;
    }
    mounted = true;
  }
  ~SmallTmpfs() {
    if (mounted) ::umount2(dir.c_str(), MNT_DETACH);
    if (!dir.empty()) ::rmdir(dir.c_str());
  }
  SmallTmpfs(const SmallTmpfs&) = delete;
  SmallTmpfs& operator=(const SmallTmpfs&) = delete;

  std::string path(const std::string& name) const { return dir + "/" + name; }
  // The names in the top directory (what a failed write may have left behind).
  std::set<std::string> entries() const {
    std::set<std::string> out;
    if (DIR* d = ::opendir(dir.c_str())) {
      while (auto* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) out.insert(e->d_name);
      ::closedir(d);
    }
    return out;
  }
  // Fills the filesystem with file `name` so that only about `leave` bytes stay free.
  void fill(const std::string& name, std::uint64_t leave) const {
    struct statvfs vfs {};
    REQUIRE(::statvfs(dir.c_str(), &vfs) == 0);
    std::uint64_t free_bytes = vfs.f_bavail * vfs.f_frsize;
    if (free_bytes <= leave) return;
    std::ofstream out(path(name), std::ios::binary);
    std::string chunk(4096, 'F');
    for (std::uint64_t n = 0; n + 4096 <= free_bytes - leave; n += 4096) out.write(chunk.data(), chunk.size());
  }
};

}  // namespace envd::testing

// Skips the rest of a test case when the tmpfs could not be mounted (not root), saying why.
#define NEED_TMPFS(fs)                                    \
  if (!(fs).mounted) {                                    \
    MESSAGE("skipped: no small tmpfs: " << (fs).why_not); \
    return;                                               \
  }
