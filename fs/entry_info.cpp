#include "fs/entry_info.h"

#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "envd/os_error.h"
#include "envd/paths.h"
#include "filesystem.pb.h"

namespace envd::fs {

namespace pb = ::filesystem;

const std::string& IdNames::user(std::uint32_t uid) {
  auto it = users_.find(uid);
  if (it == users_.end()) it = users_.emplace(uid, db_->user_name(uid)).first;
  return it->second;
}

const std::string& IdNames::group(std::uint32_t gid) {
  auto it = groups_.find(gid);
  if (it == groups_.end()) it = groups_.emplace(gid, db_->group_name(gid)).first;
  return it->second;
}

std::string go_file_mode_string(mode_t m) {
  // Go's flag letters in the order of its FileMode bits: d a l T L D p S u g c t ?. Of those Go's
  // stat sets d, L, D, p, S, u, g, c, t (a block device is D, a char device D+c).
  std::string s;
  const mode_t type = m & S_IFMT;
  if (type == S_IFDIR) s += 'd';
  if (type == S_IFLNK) s += 'L';
  if (type == S_IFBLK || type == S_IFCHR) s += 'D';
  if (type == S_IFIFO) s += 'p';
  if (type == S_IFSOCK) s += 'S';
  if (m & S_ISUID) s += 'u';
  if (m & S_ISGID) s += 'g';
  if (type == S_IFCHR) s += 'c';
  if (m & S_ISVTX) s += 't';
  if (s.empty()) s += '-';
  static constexpr char kRwx[] = "rwxrwxrwx";
  for (int i = 0; i < 9; ++i) s += (m & (1u << (8 - i))) ? kRwx[i] : '-';
  return s;
}

std::string go_basename(std::string_view name) {
  while (name.size() > 1 && name.back() == '/') name.remove_suffix(1);
  if (name.size() > 1) {
    auto slash = name.find_last_of('/', name.size() - 2);
    if (slash != std::string_view::npos) name.remove_prefix(slash + 1);
  }
  return std::string(name);
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    unsigned char c = *p;
    if (c < 0x80) {
      ++p;
      continue;
    }
    int n;
    std::uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (end - p <= n) return false;
    for (int i = 1; i <= n; ++i) {
      if ((p[i] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return false;
    p += n + 1;
  }
  return true;
}

EvalResult eval_symlinks(std::string_view in) {
  // The same walk as Go's filepath.walkSymlinks: `dest` grows one component at a time; a symlink
  // found there is spliced in front of what is left of `path`.
  EvalResult r;
  std::string path(in);
  std::size_t root_len = (!path.empty() && path[0] == '/') ? 1 : 0;
  std::string dest = path.substr(0, root_len);
  int links = 0;
  auto fail = [&](int err, std::string text, bool too_many = false) {
    r.err = err;
    r.error = std::move(text);
    r.too_many_links = too_many;
    r.path.clear();
    return r;
  };
  for (std::size_t start = root_len, end = root_len; start < path.size(); start = end) {
    while (start < path.size() && path[start] == '/') ++start;
    end = start;
    while (end < path.size() && path[end] != '/') ++end;
    if (end == start) break;
    std::string_view comp(path.data() + start, end - start);
    if (comp == ".") continue;
    if (comp == "..") {
      std::size_t r_idx = dest.size();
      while (r_idx > root_len && dest[r_idx - 1] != '/') --r_idx;
      // r_idx - 1 is the last slash after the root, if any.
      bool has_slash = r_idx > root_len;
      if (!has_slash || std::string_view(dest).substr(r_idx) == "..") {
        if (dest.size() > root_len) dest += '/';
        dest += "..";
      } else {
        dest.resize(r_idx - 1);
      }
      continue;
    }
    if (dest.size() > 0 && dest.back() != '/') dest += '/';
    dest += comp;
    struct stat st {};
    if (::lstat(dest.c_str(), &st) != 0) return fail(errno, path_error("lstat", dest, errno));
    if (!S_ISLNK(st.st_mode)) {
      if (!S_ISDIR(st.st_mode) && end < path.size()) return fail(ENOTDIR, errno_text(ENOTDIR));
      continue;
    }
    if (++links > 255) return fail(ELOOP, "EvalSymlinks: too many links", true);
    std::string link(static_cast<std::size_t>(st.st_size > 0 ? st.st_size : 0) + 1, '\0');
    for (;;) {
      ssize_t n = ::readlink(dest.c_str(), link.data(), link.size());
      if (n < 0) return fail(errno, path_error("readlink", dest, errno));
      if (static_cast<std::size_t>(n) < link.size()) {
        link.resize(static_cast<std::size_t>(n));
        break;
      }
      link.resize(link.size() * 2);
    }
    path = link + path.substr(end);
    if (!link.empty() && link[0] == '/') {
      dest = "/";
      end = 1;
      root_len = 1;
    } else {
      std::size_t r_idx = dest.size();
      while (r_idx > root_len && dest[r_idx - 1] != '/') --r_idx;
      dest.resize(r_idx > root_len ? r_idx - 1 : root_len);
      end = 0;
    }
  }
  r.path = clean_path(dest);
  return r;
}

void read_e2b_metadata(const std::string& path, pb::EntryInfo& out) {
  static constexpr std::string_view kPrefix = "user.e2b.";
  std::vector<char> names;
  for (int attempt = 0; attempt < 4; ++attempt) {
    ssize_t n = ::listxattr(path.c_str(), nullptr, 0);
    if (n <= 0) return;
    names.resize(static_cast<std::size_t>(n));
    n = ::listxattr(path.c_str(), names.data(), names.size());
    if (n >= 0) {
      names.resize(static_cast<std::size_t>(n));
      break;
    }
    if (errno != ERANGE) return;  // ERANGE: the list grew in between; ask again
    names.clear();
  }
  std::string value;
  for (std::size_t pos = 0; pos < names.size();) {
    std::string_view name(names.data() + pos);
    pos += name.size() + 1;
    if (name.substr(0, kPrefix.size()) != kPrefix) continue;
    std::string key(name.substr(kPrefix.size()));
    if (!valid_utf8(key)) continue;
    std::string full(name);
    bool got = false;
    for (int attempt = 0; attempt < 4 && !got; ++attempt) {
      ssize_t n = ::getxattr(path.c_str(), full.c_str(), nullptr, 0);
      if (n < 0) break;
      value.assign(static_cast<std::size_t>(n), '\0');
      n = ::getxattr(path.c_str(), full.c_str(), value.data(), value.size());
      if (n >= 0) {
        value.resize(static_cast<std::size_t>(n));
        got = true;
      } else if (errno != ERANGE) {
        break;
      }
    }
    if (!got || !valid_utf8(value)) continue;
    (*out.mutable_metadata())[key] = value;
  }
}

void fill_entry_info(const std::string& fs_path, std::string shown_path, const struct stat& lst, IdNames& names,
                     pb::EntryInfo& out) {
  out.set_name(go_basename(fs_path));
  out.set_path(std::move(shown_path));
  out.set_size(static_cast<std::int64_t>(lst.st_size));
  out.set_permissions(go_file_mode_string(lst.st_mode));
  out.set_owner(names.user(lst.st_uid));
  out.set_group(names.group(lst.st_gid));
  if (lst.st_mtim.tv_sec != 0 || lst.st_mtim.tv_nsec != 0) {
    auto* t = out.mutable_modified_time();
    t->set_seconds(lst.st_mtim.tv_sec);
    t->set_nanos(static_cast<std::int32_t>(lst.st_mtim.tv_nsec));
  }
  auto type_of = [](mode_t m) {
    if (S_ISREG(m)) return pb::FILE_TYPE_FILE;
    if (S_ISDIR(m)) return pb::FILE_TYPE_DIRECTORY;
    return pb::FILE_TYPE_UNSPECIFIED;  // socket, fifo, device: clients drop these
  };
  if (S_ISLNK(lst.st_mode)) {
    // A symlink reports its final target: type and permission bits (0 and UNSPECIFIED when it
    // does not resolve), and the fully resolved path (its own path when it does not resolve).
    // SYMLINK is never emitted (§5.1).
    EvalResult target = eval_symlinks(fs_path);
    // A target that is not UTF-8 cannot be sent (protobuf strings): shown as unresolvable.
    std::string resolved = target.ok() && valid_utf8(target.path) ? std::move(target.path) : fs_path;
    struct stat st {};
    if (::stat(resolved.c_str(), &st) == 0) {
      out.set_type(type_of(st.st_mode));
      out.set_mode(st.st_mode & 0777);
    } else {
      out.set_type(pb::FILE_TYPE_UNSPECIFIED);
      out.set_mode(0);
    }
    out.set_symlink_target(std::move(resolved));
  } else {
    out.set_type(type_of(lst.st_mode));
    out.set_mode(lst.st_mode & 0777);
  }
  read_e2b_metadata(fs_path, out);
}

int entry_info_at(const std::string& path, IdNames& names, pb::EntryInfo& out) {
  struct stat lst {};
  if (::lstat(path.c_str(), &lst) != 0) return errno;
  fill_entry_info(path, path, lst, names, out);
  return 0;
}

}  // namespace envd::fs
