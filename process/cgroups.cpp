#include "process/cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>

#include "envd/log.h"
#include "envd/procfs.h"
#include "envd/text_file.h"

namespace envd::process {

namespace {
constexpr long kCgroup2Magic = 0x63677270;

std::uint64_t mem_total_bytes() {
  auto mem = parse_meminfo(read_file("/proc/meminfo").value_or(""));
  return mem ? mem->total : 0;
}

std::set<std::string> tokens(const std::string& text) {
  std::set<std::string> out;
  std::istringstream in(text);
  std::string t;
  while (in >> t) {
    if (!t.empty() && (t[0] == '+' || t[0] == '-')) t.erase(0, 1);  // a fake tree keeps what was written
    if (!t.empty()) out.insert(t);
  }
  return out;
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// rmdir, or (a fake tree) the files a test or create_group put there, then rmdir. True when the
// directory is gone.
bool remove_dir(const std::string& path) {
  if (::rmdir(path.c_str()) == 0 || errno == ENOENT) return true;
  if (errno != ENOTEMPTY) return false;  // EBUSY: still populated
  // Only a plain directory (a fake tree) says ENOTEMPTY: cgroupfs control files do not count.
  if (is_cgroup2(path)) return false;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      std::string_view n = e->d_name;
      if (n != "." && n != ".." && n.find('.') != std::string_view::npos) ::unlink((path + "/" + e->d_name).c_str());
    }
    ::closedir(d);
  }
  return ::rmdir(path.c_str()) == 0;
}

// "key value" lines of memory.events / pids.events.
std::uint64_t event_count(const std::string& text, std::string_view key) {
  std::istringstream in(text);
  std::string k;
  std::uint64_t v = 0;
  while (in >> k >> v) {
    if (k == key) return v;
  }
  return 0;
}
}  // namespace

bool is_cgroup2(const std::string& path) {
  struct statfs sfs {};
  return ::statfs(path.c_str(), &sfs) == 0 && static_cast<long>(sfs.f_type) == kCgroup2Magic;
}

std::string find_cgroup2_mount(const std::string& mountinfo_path) {
  std::ifstream in(mountinfo_path);
  std::string line;
  while (std::getline(in, line)) {
    // "<id> <parent> <maj:min> <root> <mount point> <options> [optional...] - <fstype> <source> <super>"
    auto sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream tail(line.substr(sep + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "cgroup2") continue;
    std::istringstream head(line.substr(0, sep));
    std::string id, parent, dev, root, mount_point;
    head >> id >> parent >> dev >> root >> mount_point;
    return mount_point;
  }
  return "";
}

std::vector<std::string> CommandLimits::controllers() const {
  std::vector<std::string> out;
  if (memory_bytes) out.push_back("memory");
  if (max_processes) out.push_back("pids");
  if (cpu_weight || cpu_millicores) out.push_back("cpu");
  return out;
}

std::string validate_limits(const CommandLimits& l) {
  if (l.memory_bytes && *l.memory_bytes < (1u << 20))
    return "limits.memory_bytes must be at least 1048576 (1 MiB), got " + std::to_string(*l.memory_bytes);
  if (l.max_processes && *l.max_processes < 1) return "limits.max_processes must be at least 1";
  if (l.cpu_weight && (*l.cpu_weight < 1 || *l.cpu_weight > 10000))
    return "limits.cpu_weight must be in 1..10000, got " + std::to_string(*l.cpu_weight);
  if (l.cpu_millicores && (*l.cpu_millicores < 10 || *l.cpu_millicores > 1'000'000))
    return "limits.cpu_millicores must be in 10..1000000, got " + std::to_string(*l.cpu_millicores);
  return "";
}

GroupEvents read_group_events(const std::string& group_path) {
  GroupEvents ev;
  if (group_path.empty()) return ev;
  ev.oom_kills = event_count(read_file(group_path + "/memory.events").value_or(""), "oom_kill");
  ev.pids_max_hits = event_count(read_file(group_path + "/pids.events").value_or(""), "max");
  return ev;
}

void CgroupManager::write(const std::string& dir, const std::string& name, const std::string& value, int* err) const {
  std::string path = dir + "/" + name;
  // A fake tree keeps every write, one a line (subtree_control accumulates like the real one).
  int flags = O_WRONLY | O_CLOEXEC | (fake_ ? O_CREAT | O_APPEND : 0);
  int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) {
    if (err) *err = errno;
    log::info("cgroups", "skipping " + path + ": " + std::strerror(errno));
    return;
  }
  std::string data = fake_ ? value + "\n" : value;
  if (::write(fd, data.data(), data.size()) < 0) {
    if (err) *err = errno;
    log::info("cgroups", "cannot set " + path + " to \"" + value + "\": " + std::strerror(errno));
  } else if (err) {
    *err = 0;
  }
  ::close(fd);
}

int CgroupManager::make_group(const std::string& name, int cpu_weight, const std::string& io_weight,
                              std::uint64_t mem_limit) {
  std::string dir = root_ + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    log::warn("cgroups", "cannot create " + dir + ": " + std::strerror(errno));
    return -1;
  }
  if (cpu_weight > 0) write(dir, "cpu.weight", std::to_string(cpu_weight));
  if (!io_weight.empty()) write(dir, "io.weight", io_weight);
  if (mem_limit > 0) {
    write(dir, "memory.high", std::to_string(mem_limit));
    write(dir, "memory.max", std::to_string(mem_limit));
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) log::warn("cgroups", "cannot open " + dir + ": " + std::strerror(errno));
  return fd;
}

CgroupManager::CgroupManager(const CgroupConfig& cfg) {
  if (!cfg.enabled) {
    log::info("cgroups", "cgroups disabled (-no-cgroups): processes are not placed");
    disabled_reason_ = "cgroups are disabled (-no-cgroups)";
    return;
  }
  root_ = cfg.root;
  fake_ = cfg.fake_tree;
  if (!fake_ && !is_cgroup2(root_)) {
    std::string found = find_cgroup2_mount();
    if (found.empty()) {
      log::info("cgroups", root_ + " is not a cgroup v2 mount and none is mounted: processes are not placed");
      disabled_reason_ = root_ + " is not a cgroup v2 mount and none is mounted";
      root_.clear();
      return;
    }
    log::info("cgroups", root_ + " is not a cgroup v2 mount; using " + found + " from /proc/self/mountinfo");
    root_ = found;
  }
  // envd's sizing: leave min(MemTotal/8, 128 MiB) for everything outside the user's cgroups.
  std::uint64_t total = mem_total_bytes();
  std::uint64_t reserve = std::min<std::uint64_t>(total / 8, 128ull << 20);
  std::uint64_t limit = total > reserve ? total - reserve : 0;
  user_fd_ = make_group("user", 50, "default 10", limit);
  ptys_fd_ = make_group("ptys", 200, "default 50", limit);
  if (user_fd_ >= 0) {
    delegate_controllers();
    // The leaf for ordinary commands: `user` itself cannot hold processes once its children have
    // controllers. Without it, commands stay in `user` as before.
    default_fd_ = make_group("user/default", 0, "", 0);
    // Leftovers of an earlier envd: empty cmd-* groups go (populated ones refuse rmdir).
    if (DIR* d = ::opendir((root_ + "/user").c_str())) {
      while (dirent* e = ::readdir(d)) {
        if (std::string_view(e->d_name).starts_with("cmd-")) ::rmdir((root_ + "/user/" + e->d_name).c_str());
      }
      ::closedir(d);
    }
  }
  if (active()) log::info("cgroups", "placing processes under " + root_);
}

void CgroupManager::delegate_controllers() {
  static constexpr std::string_view kWanted[] = {"memory", "pids", "cpu"};
  const std::string user = root_ + "/user";
  // `user` is offered what the root enables for its children: enable there what the root has.
  auto root_offers = tokens(read_file(root_ + "/cgroup.controllers").value_or(""));
  auto root_enabled = tokens(read_file(root_ + "/cgroup.subtree_control").value_or(""));
  for (auto c : kWanted) {
    std::string name(c);
    if (root_offers.count(name) && !root_enabled.count(name)) write(root_, "cgroup.subtree_control", "+" + name);
  }
  offered_text_ = trimmed(read_file(user + "/cgroup.controllers").value_or(""));
  offered_ = tokens(offered_text_);
  delegated_ = tokens(read_file(user + "/cgroup.subtree_control").value_or(""));
  for (auto c : kWanted) {
    if (offered_.count(std::string(c))) enable_on_user(std::string(c));
  }
  std::string list;
  for (const auto& c : delegated_) list += (list.empty() ? "" : " ") + c;
  log::info("cgroups", "per-command limits: " + (list.empty() ? std::string("none") : list) + " enabled on " + user +
                           " (offered: " + (offered_text_.empty() ? std::string("none") : offered_text_) + ")");
}

void CgroupManager::enable_on_user(const std::string& controller) {
  const std::string user = root_ + "/user";
  int err = 0;
  write(user, "cgroup.subtree_control", "+" + controller, &err);
  if (err != 0) {
    why_not_[controller] = std::strerror(err);
  } else {
    why_not_.erase(controller);
  }
  delegated_ = tokens(read_file(user + "/cgroup.subtree_control").value_or(""));
}

std::string CgroupManager::limits_unavailable(const CommandLimits& limits) {
  if (root_.empty()) return "per-command limits need cgroup v2: " + disabled_reason_;
  if (user_fd_ < 0) return "per-command limits need cgroup v2: " + root_ + "/user could not be created";
  std::string missing;
  for (const auto& c : limits.controllers()) {
    if (!delegated_.count(c) && offered_.count(c)) enable_on_user(c);
    if (delegated_.count(c)) continue;
    std::string why;
    if (!offered_.count(c)) {
      why = "not offered to " + root_ +
            "/user (cgroup.controllers: " + (offered_text_.empty() ? std::string("none") : offered_text_) + ")";
    } else if (auto it = why_not_.find(c); it != why_not_.end()) {
      why = "enabling it in " + root_ + "/user/cgroup.subtree_control failed: " + it->second;
    } else {
      why = "not enabled in " + root_ + "/user/cgroup.subtree_control";
    }
    missing += (missing.empty() ? "" : "; ") + c + " " + why;
  }
  if (missing.empty()) return "";
  return "per-command limits need the cgroup v2 controller(s) they set; missing: " + missing;
}

std::optional<CommandGroup> CgroupManager::create_group(const CommandLimits& limits, std::string& error) {
  release_group(pending_, "");  // retry groups that were still populated
  CommandGroup g;
  for (;;) {
    g.path = root_ + "/user/cmd-" + std::to_string(next_group_++);
    if (::mkdir(g.path.c_str(), 0755) == 0) break;
    if (errno == EEXIST) continue;  // an earlier envd's group that is still populated
    error = "cannot create cgroup " + g.path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  auto set = [&](const std::string& name, const std::string& value, bool required) {
    if (!error.empty()) return;
    int err = 0;
    write(g.path, name, value, &err);
    if (err != 0 && required) error = "cannot set " + g.path + "/" + name + " to " + value + ": " + std::strerror(err);
  };
  error.clear();
  if (limits.memory_bytes) {
    set("memory.max", std::to_string(*limits.memory_bytes), true);
    set("memory.swap.max", "0", false);  // the limit is the memory it gets: no swapping past it
  }
  if (limits.max_processes) set("pids.max", std::to_string(*limits.max_processes), true);
  if (limits.cpu_weight) set("cpu.weight", std::to_string(*limits.cpu_weight), true);
  if (limits.cpu_millicores)
    set("cpu.max", std::to_string(std::uint64_t{*limits.cpu_millicores} * 100) + " 100000", true);
  if (error.empty()) {
    g.fd = ::open(g.path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (g.fd < 0) error = "cannot open cgroup " + g.path + ": " + std::strerror(errno);
  }
  if (!error.empty()) {
    remove_dir(g.path);
    return std::nullopt;
  }
  return g;
}

void CgroupManager::release_group(const Releaser& pending, const std::string& path) {
  if (!path.empty() && !remove_dir(path) && pending) pending->push_back(path);
  if (!pending) return;
  std::erase_if(*pending, [](const std::string& p) { return remove_dir(p); });
}

CgroupManager::~CgroupManager() {
  if (user_fd_ >= 0) ::close(user_fd_);
  if (default_fd_ >= 0) ::close(default_fd_);
  if (ptys_fd_ >= 0) ::close(ptys_fd_);
}

int CgroupManager::fd(CgroupKind kind) const {
  switch (kind) {
    case CgroupKind::user: return default_fd_ >= 0 ? default_fd_ : user_fd_;
    case CgroupKind::ptys: return ptys_fd_;
    case CgroupKind::system: return -1;  // stays in envd's own cgroup
  }
  return -1;
}

}  // namespace envd::process
