#include "process/cgroups.h"

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

void write_property(const std::string& dir, const std::string& name, const std::string& value) {
  std::string path = dir + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    log::info("cgroups", "skipping " + path + ": " + std::strerror(errno));
    return;
  }
  if (::write(fd, value.data(), value.size()) < 0) {
    log::info("cgroups", "cannot set " + path + " to \"" + value + "\": " + std::strerror(errno));
  }
  ::close(fd);
}

int make_group(const std::string& root, const std::string& name, int cpu_weight, const std::string& io_weight,
               std::uint64_t mem_limit) {
  std::string dir = root + "/" + name;
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    log::warn("cgroups", "cannot create " + dir + ": " + std::strerror(errno));
    return -1;
  }
  write_property(dir, "cpu.weight", std::to_string(cpu_weight));
  write_property(dir, "io.weight", io_weight);
  if (mem_limit > 0) {
    write_property(dir, "memory.high", std::to_string(mem_limit));
    write_property(dir, "memory.max", std::to_string(mem_limit));
  }
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) log::warn("cgroups", "cannot open " + dir + ": " + std::strerror(errno));
  return fd;
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

CgroupManager::CgroupManager(const CgroupConfig& cfg) {
  if (!cfg.enabled) {
    log::info("cgroups", "cgroups disabled (-no-cgroups): processes are not placed");
    return;
  }
  root_ = cfg.root;
  if (!is_cgroup2(root_)) {
    std::string found = find_cgroup2_mount();
    if (found.empty()) {
      log::info("cgroups", root_ + " is not a cgroup v2 mount and none is mounted: processes are not placed");
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
  user_fd_ = make_group(root_, "user", 50, "default 10", limit);
  ptys_fd_ = make_group(root_, "ptys", 200, "default 50", limit);
  if (active()) log::info("cgroups", "placing processes under " + root_);
}

CgroupManager::~CgroupManager() {
  if (user_fd_ >= 0) ::close(user_fd_);
  if (ptys_fd_ >= 0) ::close(ptys_fd_);
}

int CgroupManager::fd(CgroupKind kind) const {
  switch (kind) {
    case CgroupKind::user: return user_fd_;
    case CgroupKind::ptys: return ptys_fd_;
    case CgroupKind::system: return -1;  // stays in envd's own cgroup
  }
  return -1;
}

}  // namespace envd::process
