#include "fs/archive.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "envd/ascii.h"
#include "envd/log.h"
#include "envd/os_error.h"
#include "fs/fs_ops.h"

namespace envd::fs {

// ---------------------------------------------------------------- Accept

ArchiveFormat archive_from_accept(std::string_view accept) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  ArchiveFormat best = ArchiveFormat::none;
  double best_q = 0;
  while (!accept.empty()) {
    auto comma = accept.find(',');
    std::string_view item = accept.substr(0, comma);
    accept = comma == std::string_view::npos ? std::string_view() : accept.substr(comma + 1);
    auto semi = item.find(';');
    std::string_view type = trim(item.substr(0, semi));
    double q = 1;
    for (std::string_view params = semi == std::string_view::npos ? std::string_view() : item.substr(semi + 1);
         !params.empty();) {
      auto next = params.find(';');
      std::string_view p = trim(params.substr(0, next));
      params = next == std::string_view::npos ? std::string_view() : params.substr(next + 1);
      if (p.size() >= 2 && (p[0] == 'q' || p[0] == 'Q') && p[1] == '=') {
        std::string v(trim(p.substr(2)));
        char* end = nullptr;
        double d = std::strtod(v.c_str(), &end);
        q = (end && *end == '\0' && !v.empty()) ? d : 0;  // an unreadable q selects nothing
      }
    }
    ArchiveFormat f = ascii::iequals(type, "application/x-tar")  ? ArchiveFormat::tar
                      : ascii::iequals(type, "application/gzip") ? ArchiveFormat::tar_gzip
                                                                 : ArchiveFormat::none;
    if (f != ArchiveFormat::none && q > 0 && q > best_q) {
      best = f;
      best_q = q;
    }
  }
  return best;
}

// ---------------------------------------------------------------- names

std::optional<std::string> clean_entry_name(std::string_view name, std::string& why) {
  if (!name.empty() && name.front() == '/') {
    why = "absolute names are not allowed";
    return std::nullopt;
  }
  std::string out;
  while (!name.empty()) {
    auto slash = name.find('/');
    std::string_view part = name.substr(0, slash);
    name = slash == std::string_view::npos ? std::string_view() : name.substr(slash + 1);
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      why = "'..' components are not allowed";
      return std::nullopt;
    }
    if (!out.empty()) out += '/';
    out += part;
  }
  return out;  // "" is the archive's root (".", "./")
}

namespace {

long sys_openat2(int dirfd, const char* path, int flags, mode_t mode) {
  struct open_how how {};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? mode : 0;
  // Beneath the staging directory, through no symlink (the archive's own links are stored, never
  // followed) and no mount point.
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV;
  long r;
  do {
    r = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
  } while (r < 0 && (errno == EINTR || errno == EAGAIN));
  return r;
}

struct Fd {
  int fd = -1;
  explicit Fd(int f = -1) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

bool write_all(int fd, std::string_view data, int& err) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

std::string type_word(const rest::TarEntry& e) {
  switch (e.type) {
    case rest::TarType::char_device: return "character device";
    case rest::TarType::block_device: return "block device";
    case rest::TarType::fifo: return "FIFO";
    default: return "type '" + std::string(1, e.raw_type) + "'";
  }
}

constexpr std::size_t kInflateChunk = 64 * 1024;

}  // namespace

// ---------------------------------------------------------------- download

DirArchiver::~DirArchiver() {
  if (file_fd_ >= 0) ::close(file_fd_);
  for (auto& d : stack_) ::closedir(static_cast<DIR*>(d.dir));
}

void DirArchiver::warn(const std::string& what) {
  log::write(log::Level::warn, "files", "archive of " + root_path_ + ": " + what);
}

int DirArchiver::open_root(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    return e;
  }
  DIR* d = ::fdopendir(fd);
  if (!d) {
    int e = errno;
    ::close(fd);
    return e;
  }
  root_dev_ = st.st_dev;
  stack_.push_back({fd, d, ""});
  return 0;
}

void DirArchiver::add_entry(Dir& parent, const char* name) {
  struct stat st {};
  if (::fstatat(parent.fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno != ENOENT) warn(path_error("lstat", parent.prefix + name, errno) + " (left out)");
    return;
  }
  rest::TarEntry e;
  e.name = parent.prefix + name;
  e.mode = st.st_mode & 07777;
  e.uid = st.st_uid;
  e.gid = st.st_gid;
  e.mtime = st.st_mtim.tv_sec;
  auto add_xattrs = [&e](int fd) {
    for (auto& [k, v] : read_metadata(fd)) e.xattrs[std::string(kMetadataXattrPrefix) + k] = v;
  };
  std::string out_headers;
  if (S_ISDIR(st.st_mode)) {
    e.type = rest::TarType::directory;
    const bool descend = st.st_dev == root_dev_ && stack_.size() < opts_.max_depth;
    int fd = ::openat(parent.fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) warn(path_error("open", e.name, errno) + " (left out)");
      return;
    }
    add_xattrs(fd);
    if (st.st_dev != root_dev_) warn("'" + e.name + "' is a mount point: written without its contents");
    if (st.st_dev == root_dev_ && !descend) warn("'" + e.name + "' is deeper than --archive-max-depth: left empty");
    DIR* d = descend ? ::fdopendir(fd) : nullptr;
    if (!d) {
      ::close(fd);
    } else {
      std::string prefix = e.name + "/";
      pending_ += rest::tar_headers(e);
      ++entries_;
      stack_.push_back({fd, d, std::move(prefix)});
      return;
    }
  } else if (S_ISREG(st.st_mode)) {
    // Opened without following a link that replaced it since the stat, and without blocking on a
    // FIFO that did; the open file is the truth from here on.
    int fd = ::openat(parent.fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT) warn(path_error("open", e.name, errno) + " (left out)");
      return;
    }
    struct stat fst {};
    if (::fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode)) {
      ::close(fd);
      warn("'" + e.name + "' changed type while archived (left out)");
      return;
    }
    e.mode = fst.st_mode & 07777;
    e.uid = fst.st_uid;
    e.gid = fst.st_gid;
    e.mtime = fst.st_mtim.tv_sec;
    if (fst.st_nlink > 1) {
      // Another name of a file already in the archive goes out as a hard link to that name (as
      // GNU tar writes it), so its data is sent once and the link survives a round trip.
      const std::pair<dev_t, ino_t> key{fst.st_dev, fst.st_ino};
      if (auto it = links_.find(key); it != links_.end()) {
        ::close(fd);
        e.type = rest::TarType::hard_link;
        e.linkname = it->second;
        pending_ += rest::tar_headers(e);
        ++entries_;
        return;
      }
      if (link_name_bytes_ + e.name.size() <= kMaxLinkNameBytes) {
        link_name_bytes_ += e.name.size();
        links_.emplace(key, e.name);
      } else if (!links_full_warned_) {
        links_full_warned_ = true;
        warn("more hard-linked names than the link table holds: further links are written as separate files");
      }
    }
    e.size = static_cast<std::uint64_t>(fst.st_size);
    add_xattrs(fd);
    pending_ += rest::tar_headers(e);
    ++entries_;
    file_fd_ = fd;
    file_name_ = e.name;
    file_left_ = file_size_ = e.size;
    file_short_ = false;
    return;
  } else if (S_ISLNK(st.st_mode)) {
    e.type = rest::TarType::symlink;
    std::string target(static_cast<std::size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
    for (;;) {
      ssize_t n = ::readlinkat(parent.fd, name, target.data(), target.size());
      if (n < 0) {
        if (errno != ENOENT) warn(path_error("readlink", e.name, errno) + " (left out)");
        return;
      }
      if (static_cast<std::size_t>(n) < target.size()) {
        target.resize(static_cast<std::size_t>(n));
        break;
      }
      if (target.size() > 65536) return;
      target.resize(target.size() * 2);
    }
    e.linkname = std::move(target);
  } else if (S_ISFIFO(st.st_mode)) {
    e.type = rest::TarType::fifo;  // a header only: never opened
  } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
    e.type = S_ISCHR(st.st_mode) ? rest::TarType::char_device : rest::TarType::block_device;
    e.dev_major = major(st.st_rdev);
    e.dev_minor = minor(st.st_rdev);
  } else {
    return;  // a socket: tar has no type for it
  }
  pending_ += rest::tar_headers(e);
  ++entries_;
}

bool DirArchiver::fill(std::string& out, std::size_t budget) {
  while (out.size() < budget) {
    if (!pending_.empty()) {
      out += pending_;
      pending_.clear();
      continue;
    }
    if (file_fd_ >= 0) {
      if (file_left_ > 0 && !file_short_) {
        std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(file_left_, budget - out.size()));
        std::size_t old = out.size();
        out.resize(old + want);
        ssize_t n;
        do {
          n = ::read(file_fd_, out.data() + old, want);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
          // Shrunk (or unreadable) since its header went out: the header's size stands, the
          // rest is zeros.
          if (n < 0) warn(path_error("read", file_name_, errno));
          out.resize(old);
          file_short_ = true;
          continue;
        }
        out.resize(old + static_cast<std::size_t>(n));
        file_left_ -= static_cast<std::uint64_t>(n);
        continue;
      }
      if (file_left_ > 0) {  // short: zeros up to the header's size
        std::size_t z = static_cast<std::size_t>(std::min<std::uint64_t>(file_left_, budget - out.size()));
        out.append(z, '\0');
        file_left_ -= z;
        if (file_left_ > 0) continue;
      }
      // Grown since its header went out? Only the header's size was sent.
      char probe;
      if (file_short_) {
        ++changed_;
        warn("'" + file_name_ + "' shrank while archived: padded with zeros to " + std::to_string(file_size_) +
             " bytes");
      } else if (::pread(file_fd_, &probe, 1, static_cast<off_t>(file_size_)) == 1) {
        ++changed_;
        warn("'" + file_name_ + "' grew while archived: cut to " + std::to_string(file_size_) + " bytes");
      }
      out += rest::tar_padding(file_size_);
      ::close(file_fd_);
      file_fd_ = -1;
      continue;
    }
    if (stack_.empty()) {
      if (ended_) return false;
      out += rest::tar_end();
      ended_ = true;
      return false;
    }
    Dir& top = stack_.back();
    errno = 0;
    struct dirent* de = ::readdir(static_cast<DIR*>(top.dir));
    if (!de) {
      if (errno != 0) warn(path_error("readdirent", top.prefix.empty() ? "." : top.prefix, errno));
      ::closedir(static_cast<DIR*>(top.dir));
      stack_.pop_back();
      continue;
    }
    if (std::strcmp(de->d_name, ".") == 0 || std::strcmp(de->d_name, "..") == 0) continue;
    add_entry(top, de->d_name);  // may push onto stack_ (top is not used after)
  }
  return true;
}

// ---------------------------------------------------------------- upload

ArchiveExtractor::ArchiveExtractor(const ArchiveOptions& opts, uid_t uid, gid_t gid)
    : opts_(opts), uid_(uid), gid_(gid), reader_(rest::TarLimits{opts.max_header_bytes, opts.max_name_bytes}) {}

ArchiveExtractor::~ArchiveExtractor() {
  abort();
  if (parent_fd_ >= 0) ::close(parent_fd_);
}

void ArchiveExtractor::abort() {
  if (file_fd_ >= 0) ::close(file_fd_);
  file_fd_ = -1;
  if (staging_fd_ >= 0) ::close(staging_fd_);
  staging_fd_ = -1;
  if (!committed_ && parent_fd_ >= 0 && !staging_name_.empty()) {
    if (int e = remove_all_at(parent_fd_, staging_name_); e != 0)
      log::write(log::Level::warn, "files", "could not remove " + parent_ + "/" + staging_name_ + ": " + errno_text(e));
    staging_name_.clear();
  }
}

std::optional<WriteFailure> ArchiveExtractor::begin(const std::string& target) {
  target_ = target;
  parent_ = go_dir(target);
  base_ = std::string(base_name(target));
  if (base_.empty() || base_ == "/" || base_ == "." || base_ == "..")
    return WriteFailure{409, "path '" + target + "' exists and is not empty"};
  if (auto r = ensure_dirs(parent_, uid_, gid_); !r.ok())
    return WriteFailure{500, "error ensuring directories: " + r.error};
  parent_fd_ = ::open(parent_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (parent_fd_ < 0) return WriteFailure{500, "error opening directory: " + path_error("open", parent_, errno)};
  struct stat st {};
  if (::fstatat(parent_fd_, base_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISDIR(st.st_mode)) return WriteFailure{409, "path '" + target + "' exists and is not a directory"};
    Fd d(::openat(parent_fd_, base_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    DIR* dir = d.fd >= 0 ? ::fdopendir(d.fd) : nullptr;
    if (!dir) return WriteFailure{500, "error opening directory: " + path_error("open", target, errno)};
    d.fd = -1;  // owned by dir now
    bool empty = true;
    while (struct dirent* de = ::readdir(dir)) {
      if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) {
        empty = false;
        break;
      }
    }
    ::closedir(dir);
    if (!empty)
      return WriteFailure{409, "path '" + target +
                                   "' exists and is not empty (an archive extracts into a new or "
                                   "empty directory)"};
  } else if (errno != ENOENT) {
    return WriteFailure{500, "error checking path: " + path_error("lstat", target, errno)};
  }
  std::string name = base_ + ".e2b-extract." + random_hex();
  if (::mkdirat(parent_fd_, name.c_str(), 0700) != 0) {
    int e = errno;
    if (is_no_space(e)) return WriteFailure{507, "not enough inodes available: " + path_error("mkdir", name, e)};
    return WriteFailure{e == ENAMETOOLONG ? 400 : 500,
                        "error creating directory: " + path_error("mkdir", parent_ + "/" + name, e)};
  }
  staging_name_ = name;
  staging_fd_ = ::openat(parent_fd_, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (staging_fd_ < 0) return WriteFailure{500, "error opening directory: " + path_error("open", name, errno)};
  ::fchmod(staging_fd_, 0700);  // whatever the umask: nobody else reaches inside until the rename
  return std::nullopt;
}

std::optional<WriteFailure> ArchiveExtractor::feed(std::string_view data) {
  if (coding_ == Coding::unknown) {
    const std::size_t take = std::min(data.size(), 2 - sniff_.size());
    sniff_.append(data.substr(0, take));
    data.remove_prefix(take);
    if (sniff_.size() < 2) return std::nullopt;
    coding_ = (static_cast<unsigned char>(sniff_[0]) == 0x1f && static_cast<unsigned char>(sniff_[1]) == 0x8b)
                  ? Coding::gzip
                  : Coding::plain;
    if (coding_ == Coding::gzip) {
      inflater_ = std::make_unique<rest::GzipInflater>();
      inflated_.resize(kInflateChunk);
    }
    std::string head = std::move(sniff_);
    sniff_.clear();
    if (auto f = feed(head)) return f;
  }
  if (coding_ == Coding::plain) return feed_tar(data);
  // gzip: inflate through a fixed buffer; once the archive ended the rest is not inflated (a
  // bomb behind the end marker costs nothing).
  while (!tar_ended_) {
    auto step = inflater_->inflate({data.data(), data.size()}, {inflated_.data(), inflated_.size()});
    if (inflater_->failed()) return WriteFailure{400, "invalid archive: " + inflater_->error()};
    data.remove_prefix(step.consumed);
    if (step.produced > 0)
      if (auto f = feed_tar({inflated_.data(), step.produced})) return f;
    if (step.produced == inflated_.size()) continue;
    if (data.empty()) break;
    if (step.consumed == 0 && step.produced == 0) return WriteFailure{400, "invalid archive: gzip: no progress"};
  }
  return std::nullopt;
}

std::optional<WriteFailure> ArchiveExtractor::feed_tar(std::string_view data) {
  while (!tar_ended_) {
    auto ev = reader_.next(data);
    switch (ev) {
      case rest::TarReader::Event::need_more: return std::nullopt;
      case rest::TarReader::Event::entry:
        if (reader_.entries() > opts_.max_entries)
          return WriteFailure{
              413, "archive has more than " + std::to_string(opts_.max_entries) + " entries (--archive-max-entries)"};
        if (auto f = start_entry(reader_.entry())) return f;
        break;
      case rest::TarReader::Event::data:
        if (file_fd_ >= 0) {
          int err = 0;
          if (!write_all(file_fd_, reader_.data(), err)) {
            if (is_no_space(err)) return WriteFailure{507, "not enough disk space available"};
            return entry_error(file_name_, err, "write");
          }
        }
        break;
      case rest::TarReader::Event::end: tar_ended_ = true; return end_file();
      case rest::TarReader::Event::error:
        return WriteFailure{reader_.error_status(), "invalid archive: " + reader_.error()};
    }
  }
  return std::nullopt;
}

std::optional<WriteFailure> ArchiveExtractor::entry_error(const std::string& name, int err, const char* op) {
  int status =
      is_no_space(err)                                                                                            ? 507
      : (err == ELOOP || err == EXDEV || err == ENOTDIR || err == EEXIST || err == ENAMETOOLONG || err == EINVAL) ? 400
                                                                                                                  : 500;
  std::string why = errno_text(err);
  if (err == ELOOP || err == EXDEV) why = "a path through a symlink or out of the archive";
  return WriteFailure{status, "archive entry '" + name + "': " + op + ": " + why};
}

std::optional<WriteFailure> ArchiveExtractor::end_file() {
  if (file_fd_ < 0) return std::nullopt;
  int fd = file_fd_;
  file_fd_ = -1;
  struct timespec times[2] = {{0, UTIME_OMIT}, pending_mtime_};
  ::futimens(fd, times);
  if (::close(fd) != 0 && errno != EINTR) return entry_error(file_name_, errno, "close");
  return std::nullopt;
}

int ArchiveExtractor::open_parent(const std::string& rel, int& err) {
  // Walks the components of rel's directory from the staging dir, one openat2 each, creating a
  // missing one (0755, owned by the user: archives often leave parent entries out).
  auto slash = rel.rfind('/');
  int cur = ::dup(staging_fd_);
  if (cur < 0) {
    err = errno;
    return -1;
  }
  if (slash == std::string::npos) return cur;
  std::string_view dir(rel.data(), slash);
  std::string so_far;
  while (!dir.empty()) {
    auto s = dir.find('/');
    std::string part(dir.substr(0, s));
    dir = s == std::string_view::npos ? std::string_view() : dir.substr(s + 1);
    if (!so_far.empty()) so_far += '/';
    so_far += part;
    long next = sys_openat2(cur, part.c_str(), O_PATH | O_DIRECTORY, 0);
    if (next < 0 && errno == ENOENT) {
      if (::mkdirat(cur, part.c_str(), 0755) == 0) {
        ::fchownat(cur, part.c_str(), uid_, gid_, AT_SYMLINK_NOFOLLOW);
        ::fchmodat(cur, part.c_str(), 0755, 0);  // not subject to the umask
        written_.push_back({target_ + "/" + so_far, true});
      } else if (errno != EEXIST) {
        err = errno;
        ::close(cur);
        return -1;
      }
      next = sys_openat2(cur, part.c_str(), O_PATH | O_DIRECTORY, 0);
    }
    if (next < 0) {
      err = errno;
      ::close(cur);
      return -1;
    }
    ::close(cur);
    cur = static_cast<int>(next);
  }
  return cur;
}

std::optional<WriteFailure> ArchiveExtractor::start_entry(const rest::TarEntry& e) {
  if (auto f = end_file()) return f;
  std::string why;
  auto cleaned = clean_entry_name(e.name, why);
  if (!cleaned) return WriteFailure{400, "archive entry '" + e.name + "': " + why};
  const std::string& rel = *cleaned;
  const auto depth = static_cast<std::size_t>(std::count(rel.begin(), rel.end(), '/')) + 1;
  if (depth > opts_.max_depth)
    return WriteFailure{400, "archive entry '" + e.name + "' is deeper than " + std::to_string(opts_.max_depth) +
                                 " levels (--archive-max-depth)"};
  switch (e.type) {
    case rest::TarType::regular:
    case rest::TarType::directory:
    case rest::TarType::symlink:
    case rest::TarType::hard_link: break;
    default:
      return WriteFailure{400, "archive entry '" + e.name + "': " + type_word(e) +
                                   " entries are not allowed (only regular files, directories, symlinks and hard "
                                   "links)"};
  }
  // Metadata: user.e2b.* restored; other user.* dropped; anything else refused.
  std::vector<std::pair<std::string, std::string>> xattrs;
  for (const auto& [k, v] : e.xattrs) {
    if (k.rfind(kMetadataXattrPrefix, 0) == 0) {
      xattrs.emplace_back(k, v);
    } else if (k.rfind("user.", 0) != 0) {
      return WriteFailure{400, "archive entry '" + e.name + "': extended attribute '" + k +
                                   "' is not allowed (only user.e2b.* attributes are restored)"};
    }
  }
  for (const auto& [k, v] : e.other_pax) {
    (void)v;
    if (k.rfind("SCHILY.acl.", 0) == 0 || k.rfind("LIBARCHIVE.xattr.", 0) == 0 || k.rfind("SCHILY.fflags", 0) == 0)
      return WriteFailure{400, "archive entry '" + e.name + "': pax record '" + k +
                                   "' is not allowed (ACLs, flags and attributes other than user.e2b.* are not "
                                   "restored)"};
  }
  const mode_t mode = static_cast<mode_t>(e.mode & 0777);  // setuid, setgid and sticky dropped
  struct timespec times[2] = {{0, UTIME_OMIT}, {e.mtime, static_cast<long>(e.mtime_nsec)}};

  if (rel.empty()) {
    if (e.type != rest::TarType::directory)
      return WriteFailure{400, "archive entry '" + e.name + "': the archive's root must be a directory"};
    root_mode_ = mode;
    root_mode_set_ = true;
    dir_times_.push_back({"", times[1]});
    return std::nullopt;
  }

  int err = 0;
  Fd parent(open_parent(rel, err));
  if (parent.fd < 0) return entry_error(e.name, err, "open parent");
  const std::string base = rel.substr(rel.rfind('/') == std::string::npos ? 0 : rel.rfind('/') + 1);
  struct stat existing {};
  const bool exists = ::fstatat(parent.fd, base.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0;
  if (exists && !(e.type == rest::TarType::directory && S_ISDIR(existing.st_mode)))
    return WriteFailure{400, "archive entry '" + e.name + "': duplicate entry"};

  auto set_xattrs = [&](int fd) -> std::optional<WriteFailure> {
    for (const auto& [k, v] : xattrs) {
      if (::fsetxattr(fd, k.c_str(), v.data(), v.size(), 0) != 0) {
        if (errno == ENOTSUP) return std::nullopt;  // a filesystem without xattrs: as uploads do
        return entry_error(e.name, errno, "setxattr");
      }
    }
    return std::nullopt;
  };
  const std::string abs = target_ + "/" + rel;

  switch (e.type) {
    case rest::TarType::regular: {
      if (e.size > opts_.max_bytes - std::min(opts_.max_bytes, total_bytes_))
        return WriteFailure{413, "archive holds more than " + std::to_string(opts_.max_bytes) +
                                     " bytes of file data (--archive-max-bytes)"};
      total_bytes_ += e.size;
      long fd = sys_openat2(parent.fd, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
      if (fd < 0) return entry_error(e.name, errno, "create");
      Fd f(static_cast<int>(fd));
      if (::fchown(f.fd, uid_, gid_) != 0 || ::fchmod(f.fd, mode) != 0) return entry_error(e.name, errno, "chown");
      if (auto x = set_xattrs(f.fd)) return x;
      // The data comes next; the mtime is set now and kept (writes through this fd move it, so
      // it is set again at the end of the entry).
      file_fd_ = f.fd;
      f.fd = -1;
      file_name_ = e.name;
      pending_mtime_ = times[1];
      written_.push_back({abs, false});
      return std::nullopt;
    }
    case rest::TarType::directory: {
      if (!exists && ::mkdirat(parent.fd, base.c_str(), 0700) != 0) return entry_error(e.name, errno, "mkdir");
      long fd = sys_openat2(parent.fd, base.c_str(), O_RDONLY | O_DIRECTORY, 0);
      if (fd < 0) return entry_error(e.name, errno, "open");
      Fd d(static_cast<int>(fd));
      if (::fchown(d.fd, uid_, gid_) != 0 || ::fchmod(d.fd, mode) != 0) return entry_error(e.name, errno, "chown");
      if (auto x = set_xattrs(d.fd)) return x;
      dir_times_.push_back({rel, times[1]});
      if (!exists) written_.push_back({abs, true});
      return std::nullopt;
    }
    case rest::TarType::symlink: {
      if (e.linkname.empty()) return WriteFailure{400, "archive entry '" + e.name + "': empty symlink target"};
      if (::symlinkat(e.linkname.c_str(), parent.fd, base.c_str()) != 0) return entry_error(e.name, errno, "symlink");
      ::fchownat(parent.fd, base.c_str(), uid_, gid_, AT_SYMLINK_NOFOLLOW);
      ::utimensat(parent.fd, base.c_str(), times, AT_SYMLINK_NOFOLLOW);
      written_.push_back({abs, false});
      return std::nullopt;
    }
    case rest::TarType::hard_link: {
      std::string lwhy;
      auto lrel = clean_entry_name(e.linkname, lwhy);
      if (!lrel || lrel->empty())
        return WriteFailure{400, "archive entry '" + e.name + "': hard link to '" + e.linkname +
                                     "': " + (lwhy.empty() ? "the archive's root" : lwhy)};
      int lerr = 0;
      // Only within what was extracted: its directory must already exist (nothing is created).
      std::string_view ldir = lrel->rfind('/') == std::string::npos
                                  ? std::string_view(".")
                                  : std::string_view(*lrel).substr(0, lrel->rfind('/'));
      long lp = sys_openat2(staging_fd_, std::string(ldir).c_str(), O_PATH | O_DIRECTORY, 0);
      if (lp < 0) lerr = errno;
      Fd lparent(static_cast<int>(lp));
      const std::string lbase = lrel->substr(lrel->rfind('/') == std::string::npos ? 0 : lrel->rfind('/') + 1);
      struct stat lst {};
      if (lparent.fd < 0 || ::fstatat(lparent.fd, lbase.c_str(), &lst, AT_SYMLINK_NOFOLLOW) != 0 ||
          !S_ISREG(lst.st_mode)) {
        (void)lerr;
        return WriteFailure{400, "archive entry '" + e.name + "': hard link to '" + e.linkname +
                                     "', which is not a regular file extracted earlier from this archive"};
      }
      if (::linkat(lparent.fd, lbase.c_str(), parent.fd, base.c_str(), 0) != 0)
        return entry_error(e.name, errno, "link");
      written_.push_back({abs, false});
      return std::nullopt;
    }
    default: break;
  }
  return WriteFailure{400, "archive entry '" + e.name + "': unsupported type"};
}

std::optional<WriteFailure> ArchiveExtractor::finish() {
  if (!tar_ended_) {
    if (coding_ == Coding::unknown && !sniff_.empty()) {
      std::string head = std::move(sniff_);
      coding_ = Coding::plain;
      if (auto f = feed_tar(head)) return f;
    }
    if (!tar_ended_) {
      if (coding_ == Coding::gzip && !inflater_->finish())
        return WriteFailure{400, "invalid archive: " + inflater_->error()};
      reader_.finish();
      return WriteFailure{400, "invalid archive: " + reader_.error()};
    }
  }
  if (auto f = end_file()) return f;
  // Directory times last (entries written inside moved them), deepest first.
  for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
    struct timespec times[2] = {{0, UTIME_OMIT}, it->mtime};
    if (it->rel.empty()) {
      ::futimens(staging_fd_, times);
      continue;
    }
    long fd = sys_openat2(staging_fd_, it->rel.c_str(), O_RDONLY | O_DIRECTORY, 0);
    if (fd >= 0) {
      ::futimens(static_cast<int>(fd), times);
      ::close(static_cast<int>(fd));
    }
  }
  if (::fchown(staging_fd_, uid_, gid_) != 0 || ::fchmod(staging_fd_, root_mode_set_ ? root_mode_ : 0755) != 0)
    return WriteFailure{500, "error setting owner: " + path_error("chown", target_, errno)};
  // One rename: onto nothing, or onto an empty directory (atomically replaced); anything that
  // appeared meanwhile makes it fail.
  if (::renameat(parent_fd_, staging_name_.c_str(), parent_fd_, base_.c_str()) != 0) {
    int e = errno;
    if (e == ENOTEMPTY || e == EEXIST || e == ENOTDIR || e == EISDIR)
      return WriteFailure{409, "path '" + target_ + "' exists and is not an empty directory"};
    return WriteFailure{500, "error renaming into place: " + path_error("rename", target_, e)};
  }
  committed_ = true;
  staging_name_.clear();
  return std::nullopt;
}

}  // namespace envd::fs
