#include "fs/file_writer.h"

#include "envd/os_error.h"
#include "envd/rest/query.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>

namespace envd::fs {

namespace {

std::optional<std::string> check_printable(std::string_view what, std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x20 || c > 0x7e) {
      char hex[8];
      std::snprintf(hex, sizeof hex, "0x%02x", c);
      return "metadata " + std::string(what) + " contains non-printable-ASCII byte " + hex + " at offset " +
             std::to_string(i);
    }
  }
  return std::nullopt;
}

// All xattr names of an fd (NUL-separated). Returns false with errno set.
bool list_xattrs(int fd, std::string& names) {
  for (int attempt = 0; attempt < 8; ++attempt) {
    ssize_t n = ::flistxattr(fd, nullptr, 0);
    if (n < 0) return false;
    names.assign(static_cast<std::size_t>(n), '\0');
    if (n == 0) return true;
    n = ::flistxattr(fd, names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<std::size_t>(n));
      return true;
    }
    if (errno != ERANGE) return false;  // grew between the two calls: again
  }
  errno = ERANGE;
  return false;
}

template <class F>
void for_each_e2b_xattr(const std::string& names, F fn) {
  std::size_t pos = 0;
  while (pos < names.size()) {
    std::size_t end = names.find('\0', pos);
    if (end == std::string::npos) end = names.size();
    std::string_view name(names.data() + pos, end - pos);
    if (name.size() > kMetadataXattrPrefix.size() &&
        name.substr(0, kMetadataXattrPrefix.size()) == kMetadataXattrPrefix)
      fn(name);
    pos = end + 1;
  }
}

bool unsupported_errno(int err) { return err == ENOTSUP || err == EOPNOTSUPP || err == ENOSYS; }

struct PathLockEntry {
  std::mutex mutex;
  int users = 0;
};
std::mutex g_path_locks_mutex;
std::map<std::string, PathLockEntry, std::less<>> g_path_locks;

}  // namespace

// ---------------------------------------------------------------- metadata

Metadata metadata_from_headers(const std::vector<std::pair<std::string, std::string>>& headers) {
  constexpr std::string_view prefix = "x-metadata-";
  Metadata md;
  for (const auto& [name, value] : headers) {
    if (name.size() <= prefix.size() || std::string_view(name).substr(0, prefix.size()) != prefix) continue;
    std::string key = name.substr(prefix.size());
    if (std::any_of(md.begin(), md.end(), [&](const auto& kv) { return kv.first == key; })) continue;
    md.emplace_back(std::move(key), value);
  }
  return md;
}

std::optional<std::string> validate_metadata(const Metadata& md) {
  std::size_t total = 0;
  for (const auto& [key, value] : md) {
    if (key.empty()) return "metadata key must not be empty";
    if (key.size() > kMaxMetadataKeyBytes)
      return "metadata key " + rest::go_quote(key) + " exceeds " + std::to_string(kMaxMetadataKeyBytes) + " bytes";
    if (auto err = check_printable("key " + rest::go_quote(key), key)) return err;
    if (auto err = check_printable("value for key " + rest::go_quote(key), value)) return err;
    total += kMetadataXattrPrefix.size() + key.size() + value.size();
  }
  if (total > kMaxMetadataTotalBytes)
    return "total metadata size " + std::to_string(total) + " exceeds " + std::to_string(kMaxMetadataTotalBytes) +
           " bytes";
  return std::nullopt;
}

namespace {
WriteFailure metadata_failure(std::string_view op, std::string_view name, int err) {
  std::string detail = "xattr." + std::string(op) + " " + std::string(name) + ": " + errno_text(err);
  if (is_no_space(err)) return {507, "not enough space for file metadata: " + detail};
  return {500, "error writing file metadata: " + detail};
}
}  // namespace

std::optional<WriteFailure> replace_metadata(int fd, const Metadata& md, bool* unsupported) {
  if (unsupported) *unsupported = false;
  std::string names;
  if (!list_xattrs(fd, names)) {
    int err = errno;
    if (unsupported_errno(err)) {
      if (unsupported) *unsupported = true;
      return std::nullopt;
    }
    return metadata_failure("list", "", err);
  }
  // Stale keys go first (frees room for the new set).
  std::optional<WriteFailure> failure;
  for_each_e2b_xattr(names, [&](std::string_view name) {
    if (failure) return;
    std::string_view key = name.substr(kMetadataXattrPrefix.size());
    if (std::any_of(md.begin(), md.end(), [&](const auto& kv) { return kv.first == key; })) return;
    std::string n(name);
    if (::fremovexattr(fd, n.c_str()) != 0 && errno != ENODATA) failure = metadata_failure("remove", n, errno);
  });
  if (failure) return failure;
  for (const auto& [key, value] : md) {
    std::string n = std::string(kMetadataXattrPrefix) + key;
    if (::fsetxattr(fd, n.c_str(), value.data(), value.size(), 0) != 0) {
      int err = errno;
      if (unsupported_errno(err)) {
        if (unsupported) *unsupported = true;
        return std::nullopt;
      }
      return metadata_failure("set", n, err);
    }
  }
  return std::nullopt;
}

Metadata read_metadata(int fd) {
  Metadata md;
  std::string names;
  if (!list_xattrs(fd, names)) return md;
  for_each_e2b_xattr(names, [&](std::string_view name) {
    std::string n(name);
    std::string value;
    for (int attempt = 0; attempt < 8; ++attempt) {
      ssize_t len = ::fgetxattr(fd, n.c_str(), nullptr, 0);
      if (len < 0) return;
      value.assign(static_cast<std::size_t>(len), '\0');
      len = ::fgetxattr(fd, n.c_str(), value.data(), value.size());
      if (len >= 0) {
        value.resize(static_cast<std::size_t>(len));
        md.emplace_back(n.substr(kMetadataXattrPrefix.size()), std::move(value));
        return;
      }
      if (errno != ERANGE) return;
    }
  });
  std::sort(md.begin(), md.end());
  return md;
}

// ---------------------------------------------------------------- helpers

bool is_no_space(int err) { return err == ENOSPC || err == EDQUOT; }

std::string random_hex() {
  unsigned char bytes[8];
  std::size_t got = 0;
  while (got < sizeof bytes) {
    ssize_t n = ::getrandom(bytes + got, sizeof bytes - got, 0);
    if (n > 0) got += static_cast<std::size_t>(n);
  }
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

std::string_view base_name(std::string_view path) {
  auto slash = path.rfind('/');
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

int open_parent_dir(const std::string& path) {
  auto slash = path.rfind('/');
  std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && (errno == ELOOP || errno == ENOTDIR)) {
    // A symlink to a directory as the last parent component: envd writes through it, so do we.
    // The fd is then the one reference to the directory for every later step.
    fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  }
  return fd;
}

mode_t process_umask() {
  static const mode_t mask = [] {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("Umask:", 0) == 0) return static_cast<mode_t>(std::strtoul(line.c_str() + 6, nullptr, 8) & 0777);
    }
    return static_cast<mode_t>(022);
  }();
  return mask;
}

PathLock::PathLock(std::string path) : path_(std::move(path)) {
  PathLockEntry* entry;
  {
    std::lock_guard g(g_path_locks_mutex);
    entry = &g_path_locks[path_];
    ++entry->users;
  }
  entry->mutex.lock();
}

PathLock::~PathLock() {
  std::lock_guard g(g_path_locks_mutex);
  auto it = g_path_locks.find(path_);
  it->second.mutex.unlock();
  if (--it->second.users == 0) g_path_locks.erase(it);
}

// ---------------------------------------------------------------- writer

FileWriter::~FileWriter() { abort(); }

void FileWriter::abort() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  if (!committed_ && !temp_name_.empty() && dir_fd_ >= 0) ::unlinkat(dir_fd_, temp_name_.c_str(), 0);
  temp_name_.clear();
  if (dir_fd_ >= 0) ::close(dir_fd_);
  dir_fd_ = -1;
}

WriteFailure FileWriter::write_error(int err) const {
  if (is_no_space(err)) {
    std::string msg = "not enough disk space available";
    if (opts_.content_length) msg = "attempted to write " + std::to_string(*opts_.content_length) + " bytes: " + msg;
    return {507, msg};
  }
  return {500, "error writing file: write " + path_ + ": " + errno_text(err)};
}

std::optional<WriteFailure> FileWriter::open(const std::string& path, WriterOptions opts) {
  path_ = path;
  opts_ = std::move(opts);
  name_ = std::string(base_name(path_));
  if (name_.empty() || name_ == "." || name_ == "..") return WriteFailure{400, "path is a directory: " + path_};
  dir_fd_ = open_parent_dir(path_);
  if (dir_fd_ < 0) return WriteFailure{500, "error opening file: open " + path_ + ": " + errno_text(errno)};
  if (::fstat(dir_fd_, &dir_stat_) != 0) return WriteFailure{500, "error opening file: " + errno_text(errno)};
  return opts_.atomic ? open_atomic() : open_in_place();
}

std::optional<WriteFailure> FileWriter::open_in_place() {
  // O_NONBLOCK: a FIFO without a reader must not hang a pool thread (ENXIO instead); cleared below.
  constexpr int flags = O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
  bool created = false;
  fd_ = ::openat(dir_fd_, name_.c_str(), flags);
  if (fd_ < 0 && errno == ENOENT) {
    fd_ = ::openat(dir_fd_, name_.c_str(), flags | O_CREAT | O_EXCL, 0666);
    if (fd_ >= 0)
      created = true;
    else if (errno == EEXIST)
      fd_ = ::openat(dir_fd_, name_.c_str(), flags);  // created meanwhile
  }
  if (fd_ < 0) {
    int err = errno;
    if (err == EISDIR) return WriteFailure{400, "path is a directory: " + path_};
    if (is_no_space(err))
      return WriteFailure{507, "not enough inodes available: open " + path_ + ": " + errno_text(err)};
    return WriteFailure{500, "error opening file: open " + path_ + ": " + errno_text(err)};
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return WriteFailure{500, "error opening file: " + errno_text(errno)};
  regular_ = S_ISREG(st.st_mode);
  final_stat_ = st;
  if (regular_) {
    if (opts_.known_length && *opts_.known_length > 0) {
      // Room for the whole new content before anything of the old one is dropped. KEEP_SIZE: the
      // old content stays exactly as it is if this fails (never posix_fallocate, which writes).
      auto len = static_cast<off_t>(*opts_.known_length);
      if (::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, len) != 0 && is_no_space(errno)) {
        int err = errno;
        if (created) {
          // Ours (O_EXCL), still empty: take it away again, unless the name now means another file.
          struct stat now {};
          if (::fstatat(dir_fd_, name_.c_str(), &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == st.st_ino &&
              now.st_dev == st.st_dev)
            ::unlinkat(dir_fd_, name_.c_str(), 0);
        }
        return write_error(err);
      }
    }
    touched_ = true;
    if (::fchown(fd_, opts_.uid, opts_.gid) != 0)
      return WriteFailure{500, "error opening file: fchown " + path_ + ": " + errno_text(errno)};
    if (::ftruncate(fd_, 0) != 0)
      return WriteFailure{500, "error opening file: truncate " + path_ + ": " + errno_text(errno)};
    if (opts_.known_length && *opts_.known_length > 0)  // reserve again (the truncation freed it); best effort
      (void)::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(*opts_.known_length));
  }
  int fl = ::fcntl(fd_, F_GETFL);
  if (fl >= 0) ::fcntl(fd_, F_SETFL, fl & ~O_NONBLOCK);
  return std::nullopt;
}

std::optional<WriteFailure> FileWriter::refuse_replace(const struct stat& st) const {
  const std::string head = "cannot replace '" + path_ + "' atomically: ";
  if (S_ISDIR(st.st_mode)) return WriteFailure{400, "path is a directory: " + path_};
  if (!S_ISREG(st.st_mode)) {
    const char* kind = S_ISLNK(st.st_mode)    ? "a symbolic link"
                       : S_ISFIFO(st.st_mode) ? "a named pipe"
                       : S_ISSOCK(st.st_mode) ? "a socket"
                       : S_ISCHR(st.st_mode)  ? "a character device"
                       : S_ISBLK(st.st_mode)  ? "a block device"
                                              : "not a regular file";
    return WriteFailure{400, head + "it is " + kind +
                                 ", not a regular file, and a rename would replace it (upload without atomic=true to "
                                 "write through it)"};
  }
  if (st.st_nlink > 1)
    return WriteFailure{400, head + "it has " + std::to_string(st.st_nlink) +
                                 " hard links, which a rename would separate from the new content (upload without "
                                 "atomic=true to write in place)"};
  if (st.st_dev != dir_stat_.st_dev)
    return WriteFailure{400, head +
                                 "it is on another device than its directory (a mount point), so it cannot be "
                                 "renamed over"};
  return std::nullopt;
}

std::optional<WriteFailure> FileWriter::open_atomic() {
  struct stat st {};
  if (::fstatat(dir_fd_, name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (auto refused = refuse_replace(st)) return refused;
    if (opts_.create_only) return WriteFailure{412, "precondition failed: '" + path_ + "' already exists"};
    if (opts_.precondition)
      if (auto failed = opts_.precondition(&st)) return failed;
  } else if (errno != ENOENT) {
    return WriteFailure{500, "error opening file: stat " + path_ + ": " + errno_text(errno)};
  } else if (opts_.precondition) {
    if (auto failed = opts_.precondition(nullptr)) return failed;
  }

  fd_ = ::openat(dir_fd_, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
  if (fd_ < 0 && !is_no_space(errno)) {
    // No O_TMPFILE here (EOPNOTSUPP, EISDIR on old kernels): a hidden random name, never followed.
    for (int attempt = 0; attempt < 16 && fd_ < 0; ++attempt) {
      temp_name_ = ".e2b-upload." + random_hex() + ".tmp";
      fd_ = ::openat(dir_fd_, temp_name_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd_ < 0 && errno != EEXIST) break;
    }
    if (fd_ < 0) temp_name_.clear();
  }
  if (fd_ < 0) {
    int err = errno;
    if (is_no_space(err))
      return WriteFailure{507, "not enough inodes available: open " + path_ + ": " + errno_text(err)};
    return WriteFailure{500, "error opening file: create temp file for " + path_ + ": " + errno_text(err)};
  }
  if (::fchown(fd_, opts_.uid, opts_.gid) != 0)
    return WriteFailure{500, "error opening file: fchown " + path_ + ": " + errno_text(errno)};
  if (opts_.known_length && *opts_.known_length > 0 &&
      ::fallocate(fd_, FALLOC_FL_KEEP_SIZE, 0, static_cast<off_t>(*opts_.known_length)) != 0 && is_no_space(errno))
    return write_error(errno);
  return std::nullopt;
}

std::optional<WriteFailure> FileWriter::write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return write_error(errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    written_ += static_cast<std::uint64_t>(n);
  }
  return std::nullopt;
}

std::optional<WriteFailure> FileWriter::commit(const Metadata& md) {
  if (regular_)
    if (auto failed = replace_metadata(fd_, md, &metadata_unsupported_)) return failed;
  if (opts_.atomic) return commit_atomic();
  if (::fstat(fd_, &final_stat_) != 0) return WriteFailure{500, "error writing file: " + errno_text(errno)};
  if (regular_) final_metadata_ = read_metadata(fd_);
  committed_ = true;
  abort();  // closes the fds
  return std::nullopt;
}

std::optional<WriteFailure> FileWriter::commit_atomic() {
  // The data reaches the disk before the name points at it (outside the lock: it may take long).
  if (::fsync(fd_) != 0) return write_error(errno);
  PathLock lock(path_);
  struct stat cur {};
  bool exists = ::fstatat(dir_fd_, name_.c_str(), &cur, AT_SYMLINK_NOFOLLOW) == 0;
  if (!exists && errno != ENOENT)
    return WriteFailure{500, "error writing file: stat " + path_ + ": " + errno_text(errno)};
  if (exists) {
    if (auto refused = refuse_replace(cur)) return refused;
    if (opts_.create_only) return WriteFailure{412, "precondition failed: '" + path_ + "' already exists"};
  }
  if (opts_.precondition)
    if (auto failed = opts_.precondition(exists ? &cur : nullptr)) return failed;

  mode_t mode = 0666 & ~process_umask();
  if (exists) {
    mode = cur.st_mode & 07777;
    if (cur.st_uid != opts_.uid || cur.st_gid != opts_.gid) mode &= ~(S_ISUID | S_ISGID);
  }
  if (::fchmod(fd_, mode) != 0)
    return WriteFailure{500, "error writing file: chmod " + path_ + ": " + errno_text(errno)};

  auto rename_failure = [&](const char* op, int err) {
    if (err == EEXIST && opts_.create_only)
      return WriteFailure{412, "precondition failed: '" + path_ + "' already exists"};
    if (is_no_space(err)) return write_error(err);
    return WriteFailure{500, "error writing file: " + std::string(op) + " " + path_ + ": " + errno_text(err)};
  };
  if (temp_name_.empty()) {
    // O_TMPFILE: give the inode a name. Directly on the target when it must not exist (linkat never
    // replaces), else under a hidden name that is then renamed over the target.
    auto link_as = [&](const std::string& name) {
      if (::linkat(fd_, "", dir_fd_, name.c_str(), AT_EMPTY_PATH) == 0) return 0;
      if (errno != ENOENT && errno != EPERM) return errno;
      std::string proc = "/proc/self/fd/" + std::to_string(fd_);  // without CAP_DAC_READ_SEARCH
      return ::linkat(AT_FDCWD, proc.c_str(), dir_fd_, name.c_str(), AT_SYMLINK_FOLLOW) == 0 ? 0 : errno;
    };
    bool linked = false;
    if (!exists || opts_.create_only) {
      int err = link_as(name_);
      if (err == 0)
        linked = true;
      else if (err != EEXIST || opts_.create_only)
        return rename_failure("link", err);
    }
    if (!linked) {
      std::string tmp = ".e2b-upload." + random_hex() + ".tmp";
      if (int err = link_as(tmp); err != 0) return rename_failure("link", err);
      if (::renameat(dir_fd_, tmp.c_str(), dir_fd_, name_.c_str()) != 0) {
        int err = errno;
        ::unlinkat(dir_fd_, tmp.c_str(), 0);
        return rename_failure("rename", err);
      }
    }
  } else {
    int rc = opts_.create_only ? ::renameat2(dir_fd_, temp_name_.c_str(), dir_fd_, name_.c_str(), RENAME_NOREPLACE)
                               : ::renameat(dir_fd_, temp_name_.c_str(), dir_fd_, name_.c_str());
    if (rc != 0) return rename_failure("rename", errno);
    temp_name_.clear();
  }
  committed_ = true;
  touched_ = true;
  (void)::fsync(dir_fd_);  // the new name is durable too
  ::fstat(fd_, &final_stat_);
  final_metadata_ = read_metadata(fd_);
  abort();
  return std::nullopt;
}

}  // namespace envd::fs
