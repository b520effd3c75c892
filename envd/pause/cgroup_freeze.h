#pragma once
// Freezing the sandbox's workload before a pause (contract §4.13, §6.8): cgroup v2
// `cgroup.freeze` files under one root (-cgroup-root), never above it. Plain synchronous file
// work on a directory tree, so that the unit tests run it on a fake tree in a temporary directory;
// the HTTP side (pause_routes.cpp) decides when and how long to wait.
//
// - legacy mode freezes `user` and `ptys` (the cgroups envd puts commands and PTYs in);
// - hierarchy mode also freezes every other cgroup it finds, walking down from the root: the
//   cgroups on the path to envd's own cgroup are descended into (never frozen: envd must keep
//   running), envd's own cgroup is skipped, an allowlist (`socats`, journald) is left running, and
//   everything else is frozen whole (a frozen parent freezes its subtree, so the walk does not
//   descend). At most `max_cgroups` cgroups are visited; past that the result says `truncated`.
// - cgroups already frozen before (by the guest itself: cgroup.freeze 1) are counted as
//   `preFrozen` and never thawed by us.
// The result has the reference envd's FreezeResult fields (checked against envd 0.6.13).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace envd::pause {

enum class FreezeMode { legacy, hierarchy };
std::string_view mode_name(FreezeMode m);
// "legacy" or "hierarchy"; anything else (envd: an unknown mode) is legacy.
FreezeMode parse_mode(std::string_view s);

struct FreezeResult {
  FreezeMode mode = FreezeMode::legacy;
  std::size_t requested = 0;     // cgroups we asked to freeze
  std::size_t frozen = 0;        // of those, the ones whose cgroup.freeze took the write
  std::size_t failed = 0;        // writes that failed
  std::size_t pre_frozen = 0;    // cgroups already frozen by someone else before this freeze
  std::size_t not_frozen = 0;    // requested cgroups reporting `frozen 0` when the wait ended
  std::size_t unobservable = 0;  // requested cgroups whose cgroup.events could not be read
  std::size_t visited = 0;       // cgroups examined by the hierarchy walk (0 in legacy mode)
  std::size_t allowlisted = 0;   // cgroups the walk left running on purpose
  bool truncated = false;        // the walk stopped at max_cgroups
  std::int64_t sweep_ms = 0;     // time spent walking and writing
  std::int64_t wait_ms = 0;      // time spent waiting for `frozen 1`
  // {"allowlisted":..,"failed":..,"frozen":..,"mode":"..","notFrozen":..,"preFrozen":..,
  //  "requested":..,"sweepMs":..,"truncated":..,"unobservable":..,"visited":..,"waitMs":..}
  std::string json() const;
};

// What /init reports in X-Envd-Freeze-Audit when a freeze was in effect: the tree as it was found
// just before the thaw.
struct FreezeAudit {
  std::size_t visited = 0;     // cgroups read
  std::size_t frozen = 0;      // reporting `frozen 1`
  std::size_t escaped = 0;     // inside a cgroup we froze but not reporting frozen
  std::size_t violations = 0;  // envd's own ancestry or an allowlisted cgroup found frozen
  bool truncated = false;
  std::string json() const;  // {"visited":..,"frozen":..,"escaped":..,"violations":..,"truncated":..}
};

struct ThawResult {
  std::size_t thawed = 0;
  std::vector<std::string> errors;  // "write <path>: <strerror>"
};

// The cgroup v2 root envd works under: `root` itself when it is a cgroup2 directory, else the
// cgroup2 mount of /proc/self/mountinfo (as the process service does), else "" (no cgroups).
std::string resolve_cgroup_root(const std::string& root);
// envd's own cgroup as a path relative to `root` ("" when it is `root` itself), or nullopt when it
// is not inside `root` (then no cgroup under `root` is envd's ancestry). `self_cgroup` is the
// content of /proc/self/cgroup, `mount` the cgroup2 mount point it is relative to.
std::optional<std::string> relative_self_cgroup(std::string_view self_cgroup, const std::string& mount,
                                                const std::string& root);

class CgroupFreezer {
 public:
  struct Config {
    std::string root;                        // absolute; "" disables everything (no cgroups)
    std::optional<std::string> envd_cgroup;  // relative to root; nullopt: outside it
    std::vector<std::string> allowlist{"socats", "system.slice/systemd-journald.service"};
    std::vector<std::string> legacy{"user", "ptys"};
  };
  explicit CgroupFreezer(Config cfg) : cfg_(std::move(cfg)) {}

  bool enabled() const { return !cfg_.root.empty(); }
  const std::string& root() const { return cfg_.root; }

  // Writes 1 to the cgroup.freeze of the workload's cgroups and remembers them for thaw().
  // Fills everything but not_frozen/unobservable/wait_ms (see observe()).
  FreezeResult freeze(FreezeMode mode, std::size_t max_cgroups);
  // Reads cgroup.events of the cgroups the last freeze requested: how many say `frozen 0` still,
  // and how many could not be read (all of them without cgroups).
  struct Progress {
    std::size_t not_frozen = 0;
    std::size_t unobservable = 0;
  };
  Progress observe() const;
  // Writes 0 to the cgroup.freeze of every cgroup frozen by freeze() (not the pre-frozen ones) and
  // of the legacy pair, whatever happened before (a thaw after a restart still thaws). Missing
  // cgroups are not errors.
  ThawResult thaw();
  // A bounded walk of the whole tree (see FreezeAudit).
  FreezeAudit audit(std::size_t max_cgroups) const;
  // A freeze() has not been followed by a thaw().
  bool freeze_in_effect() const { return in_effect_; }

 private:
  std::string abs(const std::string& rel) const { return rel.empty() ? cfg_.root : cfg_.root + "/" + rel; }
  bool is_ancestry(const std::string& rel) const;  // on the path to envd's cgroup (or it)
  bool is_allowlisted(const std::string& rel) const;

  Config cfg_;
  std::vector<std::string> requested_;  // last freeze's cgroups (relative)
  std::set<std::string> frozen_by_us_;  // to thaw
  bool in_effect_ = false;
};

// File helpers (exposed for the tests): the `frozen` key of a cgroup.events text (nullopt when
// absent), and the whole-number content of cgroup.freeze.
std::optional<bool> parse_events_frozen(std::string_view events);

}  // namespace envd::pause
