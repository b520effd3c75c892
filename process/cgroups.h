#pragma once
// cgroup v2 placement for children (contract §3.1, §4.13): `<root>/user` for commands,
// `<root>/ptys` for PTYs, envd's own cgroup for tag `_system`. Without cgroup v2, or with
// -no-cgroups, every lookup gives -1 and children are not placed (everything else still works).
#include <string>

namespace envd::process {

struct CgroupConfig {
  bool enabled = true;
  std::string root = "/sys/fs/cgroup";
};

enum class CgroupKind { user, ptys, system };

class CgroupManager {
 public:
  CgroupManager() = default;
  explicit CgroupManager(const CgroupConfig& cfg);
  ~CgroupManager();
  CgroupManager(const CgroupManager&) = delete;
  CgroupManager& operator=(const CgroupManager&) = delete;

  // Directory fd for clone3(CLONE_INTO_CGROUP), or -1 (no placement).
  int fd(CgroupKind kind) const;
  const std::string& root() const { return root_; }
  bool active() const { return user_fd_ >= 0 || ptys_fd_ >= 0; }

 private:
  std::string root_;
  int user_fd_ = -1;
  int ptys_fd_ = -1;
};

// The first cgroup2 mount point listed in a mountinfo file, or "".
std::string find_cgroup2_mount(const std::string& mountinfo_path = "/proc/self/mountinfo");
// True if `path` is the root of a cgroup2 file system mount (statfs magic).
bool is_cgroup2(const std::string& path);

}  // namespace envd::process
