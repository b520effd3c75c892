#include "fs/fs_ops.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <utility>
#include <vector>

#include "envd/os_error.h"
#include "envd/paths.h"
#include "envd/rest/query.h"
#include "filesystem.pb.h"

namespace envd::fs {

namespace pb = ::filesystem;
using rpc::Code;

namespace {

// A path with a NUL byte cannot reach the kernel intact: fail as Go's syscall package does.
bool has_nul(std::string_view p) { return p.find('\0') != std::string_view::npos; }

int sys_stat(const std::string& p, struct stat& st) {
  if (has_nul(p)) return EINVAL;
  return ::stat(p.c_str(), &st) == 0 ? 0 : errno;
}

int sys_lstat(const std::string& p, struct stat& st) {
  if (has_nul(p)) return EINVAL;
  return ::lstat(p.c_str(), &st) == 0 ? 0 : errno;
}

std::string link_error(std::string_view op, std::string_view from, std::string_view to, int err) {
  std::string s(op);
  s += ' ';
  s += from;
  s += ' ';
  s += to;
  s += ": ";
  s += errno_text(err);
  return s;
}

// "/a/b" + "c" → "/a/b/c", "/" + "c" → "/c" (names from readdir: no slashes).
std::string child_path(const std::string& dir, std::string_view name) {
  std::string p = dir;
  if (p.empty() || p.back() != '/') p += '/';
  p += name;
  return p;
}

// Every name in a directory but "." and "..", sorted bytewise (Go's os.ReadDir order).
int read_names(const std::string& dir, std::vector<std::string>& names) {
  names.clear();
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    return e;
  }
  int err = 0;
  for (;;) {
    errno = 0;
    dirent* de = ::readdir(d);
    if (!de) {
      err = errno;
      break;
    }
    std::string_view n(de->d_name);
    if (n == "." || n == "..") continue;
    names.emplace_back(n);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return err;
}

// --- RemoveAll ---------------------------------------------------------------------------------

struct RmError {
  int err = 0;
  const char* op = "unlinkat";
  std::string rel;  // relative to the parent opened at the top
};

// Removes `base` inside the directory `parent`, recursively, never following symlinks.
RmError remove_from(int parent, const std::string& base, const CancelToken& cancel) {
  if (cancelled(cancel)) return {ECANCELED, "unlinkat", base};
  if (::unlinkat(parent, base.c_str(), 0) == 0 || errno == ENOENT) return {};
  const int unlink_err = errno;
  // EISDIR: a directory. EPERM/EACCES: maybe a directory too (unlink of a directory is EPERM on
  // some filesystems); its contents go first.
  if (unlink_err != EISDIR && unlink_err != EPERM && unlink_err != EACCES) return {unlink_err, "unlinkat", base};
  RmError first;
  constexpr std::size_t kBatch = 1024;
  for (;;) {
    int fd = ::openat(parent, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return {};
      if (errno == ENOTDIR || errno == ELOOP) return {unlink_err, "unlinkat", base};
      first = {errno, "openfdat", base};
      break;
    }
    DIR* d = ::fdopendir(fd);
    if (!d) {
      int e = errno;
      ::close(fd);
      return {e, "fdopendir", base};
    }
    std::size_t got = 0;
    std::vector<std::string> names;
    for (;;) {
      names.clear();
      while (names.size() < kBatch) {
        errno = 0;
        dirent* de = ::readdir(d);
        if (!de) {
          if (errno != 0) {
            int e = errno;
            ::closedir(d);
            if (e == ENOENT) return {};
            return {e, "readdirent", base};
          }
          break;
        }
        std::string_view n(de->d_name);
        if (n != "." && n != "..") names.emplace_back(n);
      }
      got = names.size();
      std::size_t failed = 0;
      for (const auto& n : names) {
        RmError e = remove_from(::dirfd(d), n, cancel);
        if (e.err == 0) continue;
        if (e.err == ECANCELED) {
          ::closedir(d);
          return e;
        }
        ++failed;
        if (first.err == 0) {
          first = std::move(e);
          first.rel = base + "/" + first.rel;
        }
      }
      // Something was removed: re-open (removal may reshuffle the directory and readdir could
      // skip entries). A whole batch that failed: read on.
      if (failed != kBatch) break;
    }
    ::closedir(d);
    if (got < kBatch) break;
  }
  if (::unlinkat(parent, base.c_str(), AT_REMOVEDIR) == 0 || errno == ENOENT) return {};
  if (first.err != 0) return first;
  return {errno, "unlinkat", base};
}

// Go's os.splitPath (used by RemoveAll): parent directory and last element.
std::pair<std::string, std::string> split_path(std::string_view path) {
  std::string dir = ".";
  while (path.size() > 1 && path[0] == '/' && path[1] == '/') path.remove_prefix(1);
  while (path.size() > 1 && path.back() == '/') path.remove_suffix(1);
  std::string base(path);
  auto slash = path.rfind('/');
  if (slash != std::string_view::npos) {
    dir = slash == 0 ? std::string("/") : std::string(path.substr(0, slash));
    base = std::string(path.substr(slash + 1));
  }
  return {dir, base};
}

// --- Copy across devices -----------------------------------------------------------------------

bool is_user_xattr(std::string_view name) { return name.substr(0, 5) == "user."; }

class TreeCopier {
 public:
  explicit TreeCopier(const CancelToken& cancel) : cancel_(cancel) {}

  // Copies `from` (lstat'ed as `st`) to the new path `to`. The first call is the tree's root.
  OsResult copy(const std::string& from, const std::string& to, const struct stat& st) {
    if (cancelled(cancel_)) return {ECANCELED, "operation canceled"};
    const bool linked = !S_ISDIR(st.st_mode) && st.st_nlink > 1;
    if (linked) {
      // A second name of an inode already copied: link to the copy (hard links stay linked).
      auto it = links_.find({st.st_dev, st.st_ino});
      if (it != links_.end()) {
        if (::link(it->second.c_str(), to.c_str()) != 0) return fail("link", to);
        return {};
      }
    }
    OsResult r;
    if (S_ISREG(st.st_mode)) {
      r = copy_file(from, to, st);
    } else if (S_ISDIR(st.st_mode)) {
      r = copy_dir(from, to, st);
    } else if (S_ISLNK(st.st_mode)) {
      r = copy_symlink(from, to, st);
    } else {
      // FIFO, socket, device: recreated, never opened or read.
      if (::mknod(to.c_str(), st.st_mode & (S_IFMT | 07777), st.st_rdev) != 0) return fail("mknod", to);
      r = set_attrs(-1, to, st, false);
    }
    if (r.ok() && linked) links_.emplace(std::make_pair(st.st_dev, st.st_ino), to);
    return r;
  }

 private:
  static OsResult fail(std::string_view op, std::string_view path, int err = errno) {
    return {err, path_error(op, path, err)};
  }

  // Owner, then mode (chown clears setuid/setgid), user.* xattrs, then times (last: the other
  // steps change ctime only, but a directory's mtime moves while its entries are created).
  OsResult set_attrs(int fd, const std::string& to, const struct stat& st, bool symlink) {
    if (fd >= 0 ? ::fchown(fd, st.st_uid, st.st_gid) != 0
                : ::fchownat(AT_FDCWD, to.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0)
      return fail("chown", to);
    if (!symlink && (fd >= 0 ? ::fchmod(fd, st.st_mode & 07777) : ::chmod(to.c_str(), st.st_mode & 07777)) != 0)
      return fail("chmod", to);
    const struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (fd >= 0 ? ::futimens(fd, times) != 0 : ::utimensat(AT_FDCWD, to.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0)
      return fail("utimes", to);
    return {};
  }

  // user.* extended attributes (metadata lives in user.e2b.*). A destination filesystem without
  // user xattrs (ENOTSUP) cannot keep them; that does not fail the move.
  OsResult copy_xattrs(const std::string& from, int in_fd, const std::string& to, int out_fd) {
    std::vector<char> names(4096);
    ssize_t n;
    for (;;) {
      n = in_fd >= 0 ? ::flistxattr(in_fd, names.data(), names.size())
                     : ::llistxattr(from.c_str(), names.data(), names.size());
      if (n >= 0) break;
      if (errno == ENOTSUP) return {};
      if (errno != ERANGE) return fail("listxattr", from);
      names.resize(names.size() * 4);
      if (names.size() > (1u << 24)) return fail("listxattr", from, E2BIG);
    }
    std::vector<char> value(4096);
    for (std::size_t pos = 0; pos < static_cast<std::size_t>(n);) {
      std::string name(names.data() + pos);
      pos += name.size() + 1;
      if (!is_user_xattr(name)) continue;
      ssize_t v;
      for (;;) {
        v = in_fd >= 0 ? ::fgetxattr(in_fd, name.c_str(), value.data(), value.size())
                       : ::lgetxattr(from.c_str(), name.c_str(), value.data(), value.size());
        if (v >= 0) break;
        if (errno == ENODATA) break;
        if (errno != ERANGE) return fail("getxattr", from);
        value.resize(value.size() * 4);
        if (value.size() > (1u << 24)) return fail("getxattr", from, E2BIG);
      }
      if (v < 0) continue;  // removed in between
      int rc = out_fd >= 0 ? ::fsetxattr(out_fd, name.c_str(), value.data(), static_cast<std::size_t>(v), 0)
                           : ::lsetxattr(to.c_str(), name.c_str(), value.data(), static_cast<std::size_t>(v), 0);
      if (rc != 0) {
        if (errno == ENOTSUP) return {};
        return fail("setxattr", to);
      }
    }
    return {};
  }

  OsResult copy_file(const std::string& from, const std::string& to, const struct stat& st) {
    int in = ::open(from.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (in < 0) return fail("open", from);
    int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (out < 0) {
      auto r = fail("open", to);
      ::close(in);
      return r;
    }
    OsResult r = copy_data(in, out, from, to);
    if (r.ok()) r = copy_xattrs(from, in, to, out);
    if (r.ok()) r = set_attrs(out, to, st, false);
    ::close(in);
    if (::close(out) != 0 && r.ok()) r = fail("close", to);
    return r;
  }

  OsResult copy_data(int in, int out, const std::string& from, const std::string& to) {
    constexpr std::size_t kChunk = 1 << 20;
    bool use_range = true;
    for (;;) {
      if (cancelled(cancel_)) return {ECANCELED, "operation canceled"};
      if (use_range) {
        ssize_t n = ::copy_file_range(in, nullptr, out, nullptr, kChunk, 0);
        if (n > 0) continue;
        if (n == 0) return {};
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) return fail("write", to);
        use_range = false;  // not across these filesystems: plain reads and writes
      }
      if (buf_.empty()) buf_.resize(kChunk);
      ssize_t n = ::read(in, buf_.data(), buf_.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return fail("read", from);
      }
      if (n == 0) return {};
      for (ssize_t off = 0; off < n;) {
        ssize_t w = ::write(out, buf_.data() + off, static_cast<std::size_t>(n - off));
        if (w < 0) {
          if (errno == EINTR) continue;
          return fail("write", to);
        }
        off += w;
      }
    }
  }

  OsResult copy_symlink(const std::string& from, const std::string& to, const struct stat& st) {
    std::string target(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 0) + 1, '\0');
    for (;;) {
      ssize_t n = ::readlink(from.c_str(), target.data(), target.size());
      if (n < 0) return fail("readlink", from);
      if (static_cast<std::size_t>(n) < target.size()) {
        target.resize(static_cast<std::size_t>(n));
        break;
      }
      target.resize(target.size() * 2);
    }
    if (::symlink(target.c_str(), to.c_str()) != 0) return fail("symlink", to);
    return set_attrs(-1, to, st, true);
  }

  OsResult copy_dir(const std::string& from, const std::string& to, const struct stat& st) {
    if (::mkdir(to.c_str(), 0700) != 0) return fail("mkdir", to);
    if (!have_root_) {
      struct stat made {};
      if (::lstat(to.c_str(), &made) != 0) return fail("lstat", to);
      root_ = {made.st_dev, made.st_ino};
      have_root_ = true;
    }
    std::vector<std::string> names;
    if (int e = read_names(from, names); e != 0) return fail("open", from, e);
    for (const auto& name : names) {
      std::string child_from = child_path(from, name);
      struct stat cst {};
      if (::lstat(child_from.c_str(), &cst) != 0) {
        if (errno == ENOENT) continue;  // vanished while copying
        return fail("lstat", child_from);
      }
      if (S_ISDIR(cst.st_mode) && std::make_pair(cst.st_dev, cst.st_ino) == root_)
        return {EINVAL, "cannot move a directory into itself: " + from};
      if (auto r = copy(child_from, child_path(to, name), cst); !r.ok()) return r;
    }
    if (auto r = copy_xattrs(from, -1, to, -1); !r.ok()) return r;
    return set_attrs(-1, to, st, false);
  }

  const CancelToken& cancel_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  std::pair<dev_t, ino_t> root_{};
  bool have_root_ = false;
  std::vector<char> buf_;
};

std::string random_suffix() {
  unsigned char b[8];
  if (::getrandom(b, sizeof b, 0) != static_cast<ssize_t>(sizeof b)) {
    auto t = static_cast<unsigned long long>(::getpid()) ^ reinterpret_cast<std::uintptr_t>(&b);
    for (auto& c : b) c = static_cast<unsigned char>(t >>= 3);
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (unsigned char c : b) {
    s += kHex[c >> 4];
    s += kHex[c & 15];
  }
  return s;
}

// Whether a directory has any entry.
bool dir_has_entries(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  bool any = false;
  while (dirent* de = ::readdir(d)) {
    std::string_view n(de->d_name);
    if (n != "." && n != "..") {
      any = true;
      break;
    }
  }
  ::closedir(d);
  return any;
}

// ListDir's walk: pre-order, lexical within each directory, symlinks listed but never followed
// (Go's filepath.WalkDir). Recursion depth is bounded by the requested depth and by PATH_MAX.
struct ListWalk {
  const std::string& shown_root;  // the requested path: children are shown under it
  std::uint32_t depth;
  IdNames& names;
  pb::ListDirResponse& out;
  const CancelToken& cancel;
  std::size_t count = 0;

  rpc::Status dir(const std::string& fs_dir, const std::string& rel, std::uint32_t level) {
    std::vector<std::string> children;
    if (int e = read_names(fs_dir, children); e != 0) {
      if (e == ENOENT) return {};  // vanished mid-walk
      std::string shown = rel.empty() ? shown_root : clean_path(shown_root + "/" + rel);
      return rpc::error(Code::internal, "error reading directory " + shown + ": " + path_error("open", shown, e));
    }
    for (const auto& name : children) {
      if ((++count & 255) == 0 && cancelled(cancel)) return rpc::error(Code::canceled, "operation canceled");
      // A name that is not UTF-8 cannot travel in a protobuf string: envd fails the whole listing
      // ("marshal message: ... invalid UTF-8"), a lenient encoder would mangle it into the path of
      // another file. Such entries (and what is below them) are left out.
      if (!valid_utf8(name)) continue;
      std::string fs_child = child_path(fs_dir, name);
      std::string child_rel = rel.empty() ? name : rel + "/" + name;
      struct stat lst {};
      if (::lstat(fs_child.c_str(), &lst) != 0) {
        if (errno == ENOENT) continue;  // vanished mid-walk
        return rpc::error(Code::internal, "error getting entry info: " + path_error("lstat", fs_child, errno));
      }
      fill_entry_info(fs_child, clean_path(shown_root + "/" + child_rel), lst, names, *out.add_entries());
      if (S_ISDIR(lst.st_mode) && level < depth) {
        if (auto st = dir(fs_child, child_rel, level + 1); !st.ok()) return st;
      }
    }
    return {};
  }
};

// Go's os.Rename refuses an existing directory as the destination, even an empty one (EEXIST),
// unless both names are one file under different names; a missing source is reported first.
// envd inherits that, and clients see "file exists" for it.
int go_rename_check(const std::string& src, const std::string& dst) {
  if (has_nul(src) || has_nul(dst)) return EINVAL;
  struct stat dst_st {};
  if (::lstat(dst.c_str(), &dst_st) != 0 || !S_ISDIR(dst_st.st_mode)) return 0;
  struct stat src_st {};
  if (::lstat(src.c_str(), &src_st) != 0) return errno;
  if (src == dst || src_st.st_dev != dst_st.st_dev || src_st.st_ino != dst_st.st_ino) return EEXIST;
  return 0;
}

}  // namespace

std::string go_dir(std::string_view path) {
  auto slash = path.rfind('/');
  if (slash == std::string_view::npos) return ".";
  return clean_path(path.substr(0, slash + 1));
}

OsResult ensure_dirs(std::string_view dir_in, uid_t uid, gid_t gid) {
  if (dir_in.empty()) return {};
  // The path and its parents as filepath.Dir gives them (lexically cleaned: "/a/x/../y" has the
  // parent "/a", and "/a/x" is never created), handled from the top down.
  std::vector<std::string> chain{std::string(dir_in)};
  for (;;) {
    std::string up = go_dir(chain.back());
    if (up == chain.back()) break;
    chain.push_back(std::move(up));
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    const std::string& sub = *it;
    struct stat st {};
    int e = sys_stat(sub, st);
    if (e == 0) {
      if (!S_ISDIR(st.st_mode)) return {ENOTDIR, "path is a file: " + sub};
      continue;
    }
    if (e != ENOENT) return {e, "failed to stat directory: " + path_error("stat", sub, e)};
    // Lost a race against a parallel creator (EEXIST): chown anyway, as envd does.
    if (::mkdir(sub.c_str(), 0755) != 0 && errno != EEXIST)
      return {errno, "failed to create directory: " + path_error("mkdir", sub, errno)};
    if (::chown(sub.c_str(), uid, gid) != 0)
      return {errno, "failed to chown directory: " + path_error("chown", sub, errno)};
  }
  return {};
}

int remove_all_at(int parent_fd, const std::string& name) { return remove_from(parent_fd, name, {}).err; }

OsResult remove_all(const std::string& path, const CancelToken& cancel) {
  if (path.empty()) return {};
  if (path == "." || (path.size() >= 2 && path.compare(path.size() - 2, 2, "/.") == 0))
    return {EINVAL, path_error("RemoveAll", path, EINVAL)};
  if (has_nul(path)) return {EINVAL, path_error("unlinkat", path, EINVAL)};
  // The simple case: a file, a symlink, an empty directory, nothing at all.
  if (::unlink(path.c_str()) == 0) return {};
  int e = errno;
  if (::rmdir(path.c_str()) == 0) return {};
  int e1 = errno;
  if ((e1 != ENOTDIR ? e1 : e) == ENOENT) return {};
  auto [parent_dir, base] = split_path(path);
  int parent = ::open(parent_dir.c_str(), O_RDONLY | O_CLOEXEC);
  if (parent < 0) {
    if (errno == ENOENT) return {};
    return {errno, path_error("open", parent_dir, errno)};
  }
  RmError r = remove_from(parent, base, cancel);
  ::close(parent);
  if (r.err == 0) return {};
  if (r.err == ECANCELED) return {ECANCELED, "operation canceled"};
  return {r.err, path_error(r.op, parent_dir == "/" ? "/" + r.rel : parent_dir + "/" + r.rel, r.err)};
}

rpc::Status stat_entry(const std::string& path, IdNames& names, pb::EntryInfo& out) {
  struct stat lst {};
  if (int e = sys_lstat(path, lst); e != 0) {
    if (e == ENOENT) return rpc::error(Code::not_found, "file not found: " + path_error("lstat", path, e));
    return rpc::error(Code::internal, "error getting file info: " + path_error("lstat", path, e));
  }
  fill_entry_info(path, path, lst, names, out);
  return {};
}

rpc::Status list_dir(const std::string& path, std::uint32_t depth, IdNames& names, pb::ListDirResponse& out,
                     const CancelToken& cancel) {
  if (depth == 0) depth = 1;
  EvalResult root = eval_symlinks(path);
  if (!root.ok()) {
    if (root.err == ENOENT) return rpc::error(Code::not_found, "path not found: " + root.error);
    if (root.too_many_links)
      return rpc::error(Code::failed_precondition, "cyclic symlink or chain >255 links at " + rest::go_quote(path));
    return rpc::error(Code::internal, "error resolving symlink: " + root.error);
  }
  struct stat st {};
  if (int e = sys_stat(root.path, st); e != 0) {
    if (e == ENOENT) return rpc::error(Code::not_found, "path not found: " + path_error("stat", root.path, e));
    return rpc::error(Code::internal, "error getting file info: " + path_error("stat", root.path, e));
  }
  if (!S_ISDIR(st.st_mode)) return rpc::error(Code::invalid_argument, "path is not a directory: " + root.path);

  ListWalk walk{path, depth, names, out, cancel};
  return walk.dir(root.path, "", 1);
}

rpc::Status make_dir(const std::string& path, uid_t uid, gid_t gid, IdNames& names, pb::EntryInfo& out) {
  struct stat st {};
  if (int e = sys_stat(path, st); e == 0) {
    if (S_ISDIR(st.st_mode)) return rpc::error(Code::already_exists, "directory already exists: " + path);
    return rpc::error(Code::invalid_argument, "path already exists but it is not a directory: " + path);
  } else if (e != ENOENT) {
    return rpc::error(Code::internal, "error getting file info: " + path_error("stat", path, e));
  }
  if (auto r = ensure_dirs(path, uid, gid); !r.ok()) return rpc::error(Code::internal, r.error);
  return stat_entry(path, names, out);
}

OsResult move_across_devices(const std::string& src, const std::string& dst, const CancelToken& cancel) {
  struct stat sst {};
  if (int e = sys_lstat(src, sst); e != 0) return {e, link_error("rename", src, dst, e)};
  // rename(2)'s overwrite rules, checked before copying anything (rename checks them again).
  struct stat dst_st {};
  if (sys_lstat(dst, dst_st) == 0) {
    int e = 0;
    if (S_ISDIR(sst.st_mode) && !S_ISDIR(dst_st.st_mode)) e = ENOTDIR;
    if (!S_ISDIR(sst.st_mode) && S_ISDIR(dst_st.st_mode)) e = EISDIR;
    if (S_ISDIR(sst.st_mode) && S_ISDIR(dst_st.st_mode) && dir_has_entries(dst)) e = ENOTEMPTY;
    if (e != 0) return {e, link_error("rename", src, dst, e)};
  }
  // The copy goes to a hidden sibling of the destination (same directory, so same filesystem):
  // the destination only ever shows the old entry or the complete new one.
  std::string parent = go_dir(dst);
  std::string tmp = child_path(parent, ".envd-move-" + random_suffix());
  TreeCopier copier(cancel);
  OsResult r = copier.copy(src, tmp, sst);
  if (r.ok() && ::rename(tmp.c_str(), dst.c_str()) != 0) r = {errno, link_error("rename", src, dst, errno)};
  if (!r.ok()) {
    remove_all(tmp);  // the source was only read: it is untouched
    return r;
  }
  // In place: only now does the source go.
  if (auto rm = remove_all(src); !rm.ok())
    return {rm.err, "moved across devices but could not remove the source: " + rm.error};
  return {};
}

rpc::Status move(const std::string& src, const std::string& dst, uid_t uid, gid_t gid, IdNames& names,
                 pb::EntryInfo& out, const CancelToken& cancel) {
  if (auto r = ensure_dirs(go_dir(dst), uid, gid); !r.ok()) return rpc::error(Code::internal, r.error);
  int e = go_rename_check(src, dst);
  if (e == 0 && ::rename(src.c_str(), dst.c_str()) != 0) e = errno;
  if (e == EXDEV) {
    // envd fails here (§5.5); we copy and remove instead (issue 8: better than envd).
    OsResult r = move_across_devices(src, dst, cancel);
    if (r.err == ECANCELED) return rpc::error(Code::canceled, r.error);
    if (r.err == ENOENT && r.error.rfind("rename ", 0) == 0)
      return rpc::error(Code::not_found, "source file not found: " + r.error);
    if (!r.ok()) return rpc::error(Code::internal, "error renaming: " + r.error);
  } else if (e == ENOENT) {
    return rpc::error(Code::not_found, "source file not found: " + link_error("rename", src, dst, e));
  } else if (e != 0) {
    return rpc::error(Code::internal, "error renaming: " + link_error("rename", src, dst, e));
  }
  return stat_entry(dst, names, out);
}

rpc::Status remove(const std::string& path, const CancelToken& cancel) {
  OsResult r = remove_all(path, cancel);
  if (r.err == ECANCELED) return rpc::error(Code::canceled, r.error);
  if (!r.ok()) return rpc::error(Code::internal, "error removing file or directory: " + r.error);
  return {};
}

}  // namespace envd::fs
