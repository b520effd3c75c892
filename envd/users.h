#pragma once
// Users and groups from /etc/passwd and /etc/group, parsed directly (a static binary cannot use
// NSS). Files are re-read when they change, so users added at run time (useradd) are seen.
// Thread-safe: the loop and blocking-pool threads may share one instance (system_user_db()).
#include <array>
#include <cstdint>
#include <map>
#include <mutex>
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
  mutable std::mutex mu_;  // guards what follows
  mutable std::vector<User> users_;
  mutable std::vector<Group> groups_;
  // mtime ns, ctime ns, inode, size: a rewrite or a rename over the file changes one of them.
  using Stamp = std::array<std::int64_t, 4>;
  mutable Stamp passwd_stamp_{-1, -1, -1, -1}, group_stamp_{-1, -1, -1, -1};
};

// /etc/passwd and /etc/group, parsed once and re-read when they change, shared by every thread
// (EntryInfo owner names on the blocking pool: a Stat no longer reads and parses both files).
const UserDb& system_user_db();

}  // namespace envd
