#include "envd/users.h"

#include <sys/stat.h>

#include <charconv>

#include "envd/text_file.h"

namespace envd {

namespace {

std::vector<std::string_view> split(std::string_view s, char sep) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (;;) {
    auto pos = s.find(sep, start);
    out.push_back(s.substr(start, pos - start));
    if (pos == std::string_view::npos) break;
    start = pos + 1;
  }
  return out;
}

bool parse_id(std::string_view s, std::uint32_t& out) {
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return !s.empty() && ec == std::errc() && p == s.data() + s.size();
}

std::array<std::int64_t, 4> stamp(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return {-2, -2, -2, -2};
  return {static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
          static_cast<std::int64_t>(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec,
          static_cast<std::int64_t>(st.st_ino), static_cast<std::int64_t>(st.st_size)};
}

}  // namespace

UserDb::UserDb(std::string passwd_path, std::string group_path)
    : passwd_path_(std::move(passwd_path)), group_path_(std::move(group_path)) {}

// Called with mu_ held.
void UserDb::refresh() const {
  auto ps = stamp(passwd_path_);
  auto gs = stamp(group_path_);
  if (ps == passwd_stamp_ && gs == group_stamp_) return;
  passwd_stamp_ = ps;
  group_stamp_ = gs;
  users_.clear();
  groups_.clear();
  std::string passwd = read_file(passwd_path_).value_or("");
  for (auto line : split(passwd, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, ':');
    if (f.size() < 7) continue;
    User u;
    u.name = std::string(f[0]);
    if (!parse_id(f[2], u.uid) || !parse_id(f[3], u.gid)) continue;
    u.home = std::string(f[5]);
    u.shell = std::string(f[6]);
    users_.push_back(std::move(u));
  }
  std::string group = read_file(group_path_).value_or("");
  for (auto line : split(group, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    auto f = split(line, ':');
    if (f.size() < 4) continue;
    Group g;
    g.name = std::string(f[0]);
    if (!parse_id(f[2], g.gid)) continue;
    if (!f[3].empty()) {
      for (auto m : split(f[3], ',')) {
        if (!m.empty()) g.members.emplace_back(m);
      }
    }
    groups_.push_back(std::move(g));
  }
}

std::optional<User> UserDb::lookup(std::string_view name) const {
  std::lock_guard lock(mu_);
  refresh();
  for (const auto& u : users_) {
    if (u.name != name) continue;
    User out = u;
    out.groups.push_back(u.gid);
    for (const auto& g : groups_) {
      for (const auto& m : g.members) {
        if (m == name && g.gid != u.gid) {
          out.groups.push_back(g.gid);
          break;
        }
      }
    }
    return out;
  }
  return std::nullopt;
}

std::string UserDb::user_name(std::uint32_t uid) const {
  std::lock_guard lock(mu_);
  refresh();
  for (const auto& u : users_) {
    if (u.uid == uid) return u.name;
  }
  return std::to_string(uid);
}

std::string UserDb::group_name(std::uint32_t gid) const {
  std::lock_guard lock(mu_);
  refresh();
  for (const auto& g : groups_) {
    if (g.gid == gid) return g.name;
  }
  return std::to_string(gid);
}

const UserDb& system_user_db() {
  static const UserDb db;
  return db;
}

}  // namespace envd
