#pragma once
// Users and groups from /etc/passwd and /etc/group, parsed directly (a static binary cannot use
// NSS). Files are re-read when they change, so users added at run time (useradd) are seen.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace envd {

struct User {
  std::string name;
  std::uint32_t uid = 0;
  std::uint32_t gid = 0;
  std::string home;
  std::string shell;
  // Supplementary groups as envd sets them: the primary gid first, then every group listing the
  // user as a member in /etc/group.
  std::vector<std::uint32_t> groups;
};

class UserDb {
 public:
  explicit UserDb(std::string passwd_path = "/etc/passwd", std::string group_path = "/etc/group");

  std::optional<User> lookup(std::string_view name) const;
  // Name for an id, or the decimal id if unknown (as envd's EntryInfo owner/group).
  std::string user_name(std::uint32_t uid) const;
  std::string group_name(std::uint32_t gid) const;

 private:
  struct Group {
    std::string name;
    std::uint32_t gid = 0;
    std::vector<std::string> members;
  };
  void refresh() const;

  std::string passwd_path_, group_path_;
  mutable std::vector<User> users_;
  mutable std::vector<Group> groups_;
  mutable std::pair<std::int64_t, std::int64_t> passwd_stamp_{-1, -1}, group_stamp_{-1, -1};  // mtime ns, size
};

}  // namespace envd
