#include "process/cgroups.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

TEST_CASE("cgroups: the cgroup2 mount is found in mountinfo") {
  char path[] = "/tmp/envd-mountinfo-XXXXXX";
  int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  {
    std::ofstream out(path);
    out << "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
           "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
           "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
  }
  CHECK(envd::process::find_cgroup2_mount(path) == "/sys/fs/cgroup/unified");
  std::remove(path);
  CHECK(envd::process::find_cgroup2_mount("/nonexistent") == "");
}

TEST_CASE("cgroups: disabled manager places nothing") {
  envd::process::CgroupManager m(envd::process::CgroupConfig{false, "/sys/fs/cgroup"});
  CHECK_FALSE(m.active());
  CHECK(m.fd(envd::process::CgroupKind::user) == -1);
  CHECK(m.fd(envd::process::CgroupKind::system) == -1);
}

// ---- issue 13.2: the per-command layout, its writes and its refusals, on a fake tree ----

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <sstream>

namespace {
namespace fs = std::filesystem;
using envd::process::CgroupConfig;
using envd::process::CgroupKind;
using envd::process::CgroupManager;
using envd::process::CommandLimits;

struct FakeTree {
  fs::path root;
  FakeTree(const std::string& root_offers, const std::string& user_offers) {
    char tmpl[] = "/tmp/envd-cgtree-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    root = tmpl;
    put("cgroup.controllers", root_offers + "\n");
    put("cgroup.subtree_control", "");
    fs::create_directory(root / "user");
    put("user/cgroup.controllers", user_offers + "\n");
    put("user/cgroup.subtree_control", "");
  }
  ~FakeTree() { fs::remove_all(root); }
  void put(const std::string& rel, const std::string& text) const { std::ofstream(root / rel) << text; }
  std::string get(const std::string& rel) const {
    std::ifstream in(root / rel);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  CgroupConfig config() const { return CgroupConfig{true, root.string(), true}; }
};

bool same_dir(int fd, const fs::path& p) {
  struct stat a {
  }, b{};
  return fd >= 0 && ::fstat(fd, &a) == 0 && ::stat(p.c_str(), &b) == 0 && a.st_ino == b.st_ino && a.st_dev == b.st_dev;
}
}  // namespace

TEST_CASE("cgroups: ordinary commands go to the user/default leaf, controllers are enabled on user") {
  FakeTree t("cpuset cpu io memory hugetlb pids", "cpuset cpu io memory pids");
  fs::create_directory(t.root / "user/cmd-77");  // an earlier envd's group, now empty
  CgroupManager m(t.config());
  REQUIRE(m.active());
  CHECK(m.root() == t.root.string());
  // The root enables for `user` what it offers, `user` for its children what it is offered.
  CHECK(t.get("cgroup.subtree_control") == "+memory\n+pids\n+cpu\n");
  CHECK(t.get("user/cgroup.subtree_control") == "+memory\n+pids\n+cpu\n");
  CHECK(m.delegated() == std::set<std::string>{"cpu", "memory", "pids"});
  CHECK(same_dir(m.fd(CgroupKind::user), t.root / "user/default"));
  CHECK(same_dir(m.fd(CgroupKind::ptys), t.root / "ptys"));
  CHECK(m.fd(CgroupKind::system) == -1);
  CHECK_FALSE(fs::exists(t.root / "user/cmd-77"));  // an empty leftover group is swept
}

TEST_CASE("cgroups: a limited command's group gets its limits written") {
  FakeTree t("cpu memory pids", "cpu memory pids");
  CgroupManager m(t.config());
  CommandLimits l;
  l.memory_bytes = 64u << 20;
  l.max_processes = 10;
  l.cpu_weight = 50;
  l.cpu_millicores = 500;
  CHECK(m.limits_unavailable(l) == "");
  std::string err;
  auto g = m.create_group(l, err);
  REQUIRE_MESSAGE(g.has_value(), err);
  CHECK(g->path == (t.root / "user/cmd-1").string());
  CHECK(same_dir(g->fd, g->path));
  ::close(g->fd);
  CHECK(t.get("user/cmd-1/memory.max") == "67108864\n");
  CHECK(t.get("user/cmd-1/memory.swap.max") == "0\n");
  CHECK(t.get("user/cmd-1/pids.max") == "10\n");
  CHECK(t.get("user/cmd-1/cpu.weight") == "50\n");
  CHECK(t.get("user/cmd-1/cpu.max") == "50000 100000\n");

  // Only what was asked for is written.
  CommandLimits only_pids;
  only_pids.max_processes = 3;
  auto g2 = m.create_group(only_pids, err);
  REQUIRE(g2.has_value());
  ::close(g2->fd);
  CHECK(g2->path == (t.root / "user/cmd-2").string());
  CHECK(t.get("user/cmd-2/pids.max") == "3\n");
  CHECK_FALSE(fs::exists(t.root / "user/cmd-2/memory.max"));

  // The events the exit cause is made of, then the group goes.
  t.put("user/cmd-1/memory.events", "low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\n");
  t.put("user/cmd-1/pids.events", "max 7\n");
  auto ev = envd::process::read_group_events(g->path);
  CHECK(ev.oom_kills == 1);
  CHECK(ev.pids_max_hits == 7);
  auto none = envd::process::read_group_events(g2->path);
  CHECK(none.oom_kills == 0);
  CHECK(none.pids_max_hits == 0);
  CgroupManager::release_group(m.releaser(), g->path);
  CgroupManager::release_group(m.releaser(), g2->path);
  CHECK_FALSE(fs::exists(g->path));
  CHECK_FALSE(fs::exists(g2->path));
  CHECK(m.releaser()->empty());
}

TEST_CASE("cgroups: a group still populated is removed later") {
  FakeTree t("pids", "pids");
  CgroupManager m(t.config());
  CommandLimits l;
  l.max_processes = 5;
  std::string err;
  auto g = m.create_group(l, err);
  REQUIRE(g.has_value());
  ::close(g->fd);
  fs::create_directory(fs::path(g->path) / "child");  // stands for "still has processes"
  CgroupManager::release_group(m.releaser(), g->path);
  CHECK(fs::exists(g->path));
  CHECK(m.releaser()->size() == 1);
  fs::remove(fs::path(g->path) / "child");
  auto g2 = m.create_group(l, err);  // the next create retries it
  REQUIRE(g2.has_value());
  ::close(g2->fd);
  CHECK_FALSE(fs::exists(g->path));
  CHECK(m.releaser()->empty());
  CgroupManager::release_group(m.releaser(), g2->path);
}

TEST_CASE("cgroups: limits are refused naming what is missing") {
  // These machines: a hybrid hierarchy whose cgroup2 offers only hugetlb.
  FakeTree t("hugetlb", "hugetlb");
  CgroupManager m(t.config());
  CHECK(m.active());
  CHECK(m.delegated().empty());
  CHECK(t.get("cgroup.subtree_control") == "");  // nothing enabled that is not there
  CHECK(t.get("user/cgroup.subtree_control") == "");
  CHECK(same_dir(m.fd(CgroupKind::user), t.root / "user/default"));
  CommandLimits mem;
  mem.memory_bytes = 1u << 30;
  const std::string where = t.root.string() + "/user";
  CHECK(m.limits_unavailable(mem) ==
        "per-command limits need the cgroup v2 controller(s) they set; missing: memory not offered to " + where +
            " (cgroup.controllers: hugetlb)");
  CommandLimits all = mem;
  all.max_processes = 4;
  all.cpu_weight = 10;
  std::string why = m.limits_unavailable(all);
  CHECK(why.find("missing: memory not offered") != std::string::npos);
  CHECK(why.find("; pids not offered") != std::string::npos);
  CHECK(why.find("; cpu not offered") != std::string::npos);

  // Offered but not enabled (a fake tree whose subtree_control is read back without it).
  FakeTree u("memory pids", "memory pids");
  fs::remove(u.root / "user/cgroup.subtree_control");
  fs::create_directory(u.root / "user/cgroup.subtree_control");  // writes fail: EISDIR
  CgroupManager m2(u.config());
  CommandLimits pids;
  pids.max_processes = 3;
  CHECK(m2.limits_unavailable(pids) ==
        "per-command limits need the cgroup v2 controller(s) they set; missing: pids "
        "enabling it in " +
            u.root.string() + "/user/cgroup.subtree_control failed: Is a directory");
  // What blocked it went away (an older layout's processes left `user`): the next limited Start
  // enables it.
  fs::remove(u.root / "user/cgroup.subtree_control");
  u.put("user/cgroup.subtree_control", "");
  CHECK(m2.limits_unavailable(pids) == "");
  CHECK(m2.delegated() == std::set<std::string>{"pids"});
  CHECK(u.get("user/cgroup.subtree_control") == "+pids\n");

  CgroupManager off(CgroupConfig{false, "/sys/fs/cgroup"});
  CHECK(off.limits_unavailable(mem) == "per-command limits need cgroup v2: cgroups are disabled (-no-cgroups)");
}

TEST_CASE("cgroups: limit values are checked") {
  using envd::process::validate_limits;
  CommandLimits l;
  CHECK(validate_limits(l) == "");
  CHECK_FALSE(l.any());
  l.memory_bytes = 4096;
  CHECK(validate_limits(l) == "limits.memory_bytes must be at least 1048576 (1 MiB), got 4096");
  l.memory_bytes = 1u << 20;
  CHECK(validate_limits(l) == "");
  l.max_processes = 0;
  CHECK(validate_limits(l) == "limits.max_processes must be at least 1");
  l.max_processes = 1;
  l.cpu_weight = 10001;
  CHECK(validate_limits(l) == "limits.cpu_weight must be in 1..10000, got 10001");
  l.cpu_weight = 100;
  l.cpu_millicores = 5;
  CHECK(validate_limits(l) == "limits.cpu_millicores must be in 10..1000000, got 5");
  l.cpu_millicores = 250;
  CHECK(validate_limits(l) == "");
  CHECK(l.controllers() == std::vector<std::string>{"memory", "pids", "cpu"});
}
