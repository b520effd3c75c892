#include "envd/pause/cgroup_freeze.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>

#include "process/cgroups.h"

namespace envd::pause {

namespace {

std::optional<std::string> read_small(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[512];
  std::string out;
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.size() > 4096) break;
  }
  ::close(fd);
  return out;
}

// 0 or errno.
int write_small(const std::string& path, std::string_view value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return errno;
  int err = 0;
  if (::write(fd, value.data(), value.size()) < 0) err = errno;
  ::close(fd);
  return err;
}

// Sorted names of the child cgroups (subdirectories) of `dir`.
std::vector<std::string> children(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  while (dirent* e = ::readdir(d)) {
    std::string_view name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st {};
      is_dir = ::fstatat(::dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    if (is_dir) out.emplace_back(name);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string join(const std::string& parent, const std::string& name) {
  return parent.empty() ? name : parent + "/" + name;
}

bool freeze_file_is_one(const std::string& dir) {
  auto v = read_small(dir + "/cgroup.freeze");
  return v && !v->empty() && (*v)[0] == '1';
}

// Whether `rel` is `base` or inside it.
bool within(const std::string& rel, const std::string& base) {
  return rel == base || (rel.size() > base.size() && rel.compare(0, base.size(), base) == 0 && rel[base.size()] == '/');
}

std::int64_t ms_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

std::string_view mode_name(FreezeMode m) { return m == FreezeMode::hierarchy ? "hierarchy" : "legacy"; }

FreezeMode parse_mode(std::string_view s) { return s == "hierarchy" ? FreezeMode::hierarchy : FreezeMode::legacy; }

std::string FreezeResult::json() const {
  auto n = [](std::size_t v) { return std::to_string(v); };
  return "{\"allowlisted\":" + n(allowlisted) + ",\"failed\":" + n(failed) + ",\"frozen\":" + n(frozen) +
         ",\"mode\":\"" + std::string(mode_name(mode)) + "\",\"notFrozen\":" + n(not_frozen) +
         ",\"preFrozen\":" + n(pre_frozen) + ",\"requested\":" + n(requested) +
         ",\"sweepMs\":" + std::to_string(sweep_ms) + ",\"truncated\":" + (truncated ? "true" : "false") +
         ",\"unobservable\":" + n(unobservable) + ",\"visited\":" + n(visited) +
         ",\"waitMs\":" + std::to_string(wait_ms) + "}";
}

std::string FreezeAudit::json() const {
  return "{\"visited\":" + std::to_string(visited) + ",\"frozen\":" + std::to_string(frozen) +
         ",\"escaped\":" + std::to_string(escaped) + ",\"violations\":" + std::to_string(violations) +
         ",\"truncated\":" + (truncated ? "true" : "false") + "}";
}

std::optional<bool> parse_events_frozen(std::string_view events) {
  while (!events.empty()) {
    auto nl = events.find('\n');
    std::string_view line = events.substr(0, nl);
    events.remove_prefix(nl == std::string_view::npos ? events.size() : nl + 1);
    if (line.rfind("frozen ", 0) == 0) return line.substr(7) == "1";
  }
  return std::nullopt;
}

std::string resolve_cgroup_root(const std::string& root) {
  if (!root.empty() && process::is_cgroup2(root)) return root;
  return process::find_cgroup2_mount();
}

std::optional<std::string> relative_self_cgroup(std::string_view self_cgroup, const std::string& mount,
                                                const std::string& root) {
  // cgroup v2's line is "0::<path>".
  std::string path;
  bool found = false;
  while (!self_cgroup.empty()) {
    auto nl = self_cgroup.find('\n');
    std::string_view line = self_cgroup.substr(0, nl);
    self_cgroup.remove_prefix(nl == std::string_view::npos ? self_cgroup.size() : nl + 1);
    if (line.rfind("0::", 0) == 0) {
      path = std::string(line.substr(3));
      found = true;
      break;
    }
  }
  if (!found || mount.empty()) return std::nullopt;
  std::string abs = mount;
  if (path != "/") abs += path;
  if (abs == root) return std::string();
  if (abs.size() > root.size() && abs.compare(0, root.size(), root) == 0 && abs[root.size()] == '/') {
    return abs.substr(root.size() + 1);
  }
  return std::nullopt;
}

bool CgroupFreezer::is_ancestry(const std::string& rel) const {
  return cfg_.envd_cgroup && within(*cfg_.envd_cgroup, rel);
}

bool CgroupFreezer::is_allowlisted(const std::string& rel) const {
  return std::find(cfg_.allowlist.begin(), cfg_.allowlist.end(), rel) != cfg_.allowlist.end();
}

FreezeResult CgroupFreezer::freeze(FreezeMode mode, std::size_t max_cgroups) {
  const auto start = std::chrono::steady_clock::now();
  FreezeResult r;
  r.mode = mode;
  requested_.clear();
  if (!enabled()) {
    // As envd's no-op manager (-no-cgroups, no cgroup2): the legacy pair is requested, and reported
    // unobservable, never as frozen.
    r.mode = FreezeMode::legacy;
    r.requested = cfg_.legacy.size();
    return r;
  }
  // The cgroups already frozen by the guest (bounded walk): counted, remembered, never thawed.
  std::set<std::string> pre;
  {
    std::deque<std::string> queue{""};
    std::size_t seen = 0;
    while (!queue.empty() && seen < max_cgroups) {
      std::string rel = queue.front();
      queue.pop_front();
      for (auto& name : children(abs(rel))) {
        if (++seen > max_cgroups) break;
        std::string child = join(rel, name);
        if (freeze_file_is_one(abs(child)) && !frozen_by_us_.count(child)) pre.insert(child);
        queue.push_back(std::move(child));
      }
    }
  }
  r.pre_frozen = pre.size();

  std::vector<std::string> targets;
  auto add = [&](const std::string& rel) {
    if (std::find(targets.begin(), targets.end(), rel) == targets.end()) targets.push_back(rel);
  };
  if (mode == FreezeMode::hierarchy) {
    std::deque<std::string> queue{""};
    while (!queue.empty() && !r.truncated) {
      std::string rel = queue.front();
      queue.pop_front();
      for (auto& name : children(abs(rel))) {
        if (r.visited >= max_cgroups) {
          r.truncated = true;
          break;
        }
        ++r.visited;
        std::string child = join(rel, name);
        if (cfg_.envd_cgroup && child == *cfg_.envd_cgroup) continue;  // envd itself keeps running
        if (is_ancestry(child)) {
          queue.push_back(std::move(child));  // freeze its other children, not the path to envd
        } else if (is_allowlisted(child)) {
          ++r.allowlisted;
        } else {
          add(child);
        }
      }
    }
  }
  for (const auto& l : cfg_.legacy) {
    struct stat st {};
    if (::stat(abs(l).c_str(), &st) == 0 && !is_ancestry(l)) add(l);
  }

  for (const auto& rel : targets) {
    ++r.requested;
    requested_.push_back(rel);
    if (int err = write_small(abs(rel) + "/cgroup.freeze", "1"); err != 0) {
      ++r.failed;
      continue;
    }
    ++r.frozen;
    if (!pre.count(rel)) frozen_by_us_.insert(rel);
  }
  in_effect_ = true;
  r.sweep_ms = ms_since(start);
  return r;
}

CgroupFreezer::Progress CgroupFreezer::observe() const {
  Progress p;
  if (!enabled()) {
    p.unobservable = cfg_.legacy.size();
    return p;
  }
  for (const auto& rel : requested_) {
    auto events = read_small(abs(rel) + "/cgroup.events");
    auto frozen = events ? parse_events_frozen(*events) : std::nullopt;
    if (!frozen) {
      ++p.unobservable;  // nothing to wait for (envd counts these apart from notFrozen)
    } else if (!*frozen) {
      ++p.not_frozen;
    }
  }
  return p;
}

ThawResult CgroupFreezer::thaw() {
  ThawResult r;
  if (!enabled()) return r;
  std::set<std::string> targets = frozen_by_us_;
  for (const auto& l : cfg_.legacy) targets.insert(l);
  for (const auto& rel : targets) {
    std::string path = abs(rel) + "/cgroup.freeze";
    int err = write_small(path, "0");
    if (err == ENOENT) continue;  // gone (or never made): nothing to thaw
    if (err != 0) {
      r.errors.push_back("write " + path + ": " + std::strerror(err));
      continue;
    }
    ++r.thawed;
  }
  // Keep the ones that failed for the next thaw (the watchdog, /init, another /unfreeze).
  if (r.errors.empty()) frozen_by_us_.clear();
  requested_.clear();
  in_effect_ = false;
  return r;
}

FreezeAudit CgroupFreezer::audit(std::size_t max_cgroups) const {
  FreezeAudit a;
  if (!enabled()) return a;
  std::deque<std::string> queue{""};
  while (!queue.empty() && !a.truncated) {
    std::string rel = queue.front();
    queue.pop_front();
    for (auto& name : children(abs(rel))) {
      if (a.visited >= max_cgroups) {
        a.truncated = true;
        break;
      }
      ++a.visited;
      std::string child = join(rel, name);
      auto events = read_small(abs(child) + "/cgroup.events");
      bool frozen = events && parse_events_frozen(*events).value_or(false);
      if (frozen) ++a.frozen;
      bool ours = std::any_of(frozen_by_us_.begin(), frozen_by_us_.end(),
                              [&](const std::string& f) { return within(child, f); });
      if (ours && !frozen) ++a.escaped;
      if (frozen && (is_ancestry(child) || is_allowlisted(child))) ++a.violations;
      queue.push_back(std::move(child));
    }
  }
  return a;
}

}  // namespace envd::pause
