#pragma once
// cgroup v2 placement for children (contract §3.1, §4.13): `<root>/user` for commands,
// `<root>/ptys` for PTYs, envd's own cgroup for tag `_system`. Without cgroup v2, or with
// -no-cgroups, every lookup gives -1 and children are not placed (everything else still works).
//
// Per-command limits (issue 13.2): cgroup v2 forbids processes in a group whose children have
// controllers, so ordinary commands go to the leaf `user/default`, limited ones each to their own
// `user/cmd-<n>`, and `+memory +pids +cpu` is enabled on `user` where `user` is offered them.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace envd::process {

struct CgroupConfig {
  bool enabled = true;
  std::string root = "/sys/fs/cgroup";
  // Tests: `root` is a plain directory standing in for a cgroup2 mount (no statfs check, control
  // files are created when missing).
  bool fake_tree = false;
};

// StartRequest.limits, as values (absent: not limited).
struct CommandLimits {
  std::optional<std::uint64_t> memory_bytes;
  std::optional<std::uint32_t> max_processes;
  std::optional<std::uint32_t> cpu_weight;
  std::optional<std::uint32_t> cpu_millicores;
  bool any() const { return memory_bytes || max_processes || cpu_weight || cpu_millicores; }
  // Controllers these limits need, in the order memory, pids, cpu.
  std::vector<std::string> controllers() const;
};

// "" when the values are acceptable, else the invalid_argument text.
std::string validate_limits(const CommandLimits& limits);

// A command's own group: its directory fd (for clone3) and absolute path. The caller closes fd.
struct CommandGroup {
  std::string path;
  int fd = -1;
};

// The counters that make an exit cause OOM or pids limit (0 when unreadable).
struct GroupEvents {
  std::uint64_t oom_kills = 0;      // memory.events `oom_kill`
  std::uint64_t pids_max_hits = 0;  // pids.events `max`
};
GroupEvents read_group_events(const std::string& group_path);

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

  // Controllers enabled in user/cgroup.subtree_control (what limited commands can use).
  const std::set<std::string>& delegated() const { return delegated_; }
  // "" when `limits` can be applied here, else why not (failed_precondition text naming what is
  // missing).
  // A controller `user` is offered but that could not be enabled at start-up (processes still in
  // `user` from an older layout: EBUSY) is tried again here.
  std::string limits_unavailable(const CommandLimits& limits);
  // Creates user/cmd-<n> and writes the limits. On failure: nullopt and `error` says why (the
  // group is removed again).
  std::optional<CommandGroup> create_group(const CommandLimits& limits, std::string& error);
  // Removes a command's group once its process ended; a group still populated (background
  // children) is retried at the next create_group / release_group. Safe to call after the
  // manager is gone (it holds the list through a shared pointer).
  using Releaser = std::shared_ptr<std::vector<std::string>>;
  Releaser releaser() const { return pending_; }
  static void release_group(const Releaser& pending, const std::string& path);

 private:
  void write(const std::string& dir, const std::string& name, const std::string& value, int* err = nullptr) const;
  int make_group(const std::string& name, int cpu_weight, const std::string& io_weight, std::uint64_t mem_limit);
  void delegate_controllers();
  void enable_on_user(const std::string& controller);

  std::string root_;
  std::string disabled_reason_;  // why there is no root (when root_ is empty)
  bool fake_ = false;
  int user_fd_ = -1;
  int default_fd_ = -1;  // user/default: ordinary commands (user itself when it cannot be made)
  int ptys_fd_ = -1;
  std::set<std::string> offered_;               // user/cgroup.controllers
  std::set<std::string> delegated_;             // user/cgroup.subtree_control
  std::string offered_text_;                    // user/cgroup.controllers as read
  std::map<std::string, std::string> why_not_;  // controller -> why enabling failed
  std::uint64_t next_group_ = 1;
  Releaser pending_ = std::make_shared<std::vector<std::string>>();
};

// The first cgroup2 mount point listed in a mountinfo file, or "".
std::string find_cgroup2_mount(const std::string& mountinfo_path = "/proc/self/mountinfo");
// True if `path` is the root of a cgroup2 file system mount (statfs magic).
bool is_cgroup2(const std::string& path);

}  // namespace envd::process
