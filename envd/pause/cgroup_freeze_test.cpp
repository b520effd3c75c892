#include "envd/pause/cgroup_freeze.h"

#include <doctest/doctest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace {

namespace fsys = std::filesystem;
using envd::pause::CgroupFreezer;
using envd::pause::FreezeMode;

// A fake cgroup tree in a temporary directory: each cgroup is a directory with cgroup.freeze and
// cgroup.events files (the kernel's would say `frozen 1` by itself; here the test writes it).
struct FakeTree {
  fsys::path root;
  FakeTree() {
    char tmpl[] = "/tmp/envd-freeze-test-XXXXXX";
    root = ::mkdtemp(tmpl);
  }
  ~FakeTree() { fsys::remove_all(root); }
  void add(const std::string& rel, bool frozen = false) {
    fsys::create_directories(root / rel);
    write(rel + "/cgroup.freeze", frozen ? "1\n" : "0\n");
    set_events(rel, frozen);
  }
  void set_events(const std::string& rel, bool frozen) {
    write(rel + "/cgroup.events", std::string("populated 1\nfrozen ") + (frozen ? "1" : "0") + "\n");
  }
  void write(const std::string& rel, const std::string& text) { std::ofstream(root / rel) << text; }
  char freeze(const std::string& rel) {
    std::ifstream in(root / rel / "cgroup.freeze");
    char c = '?';
    in >> c;
    return c;
  }
};

CgroupFreezer make(const FakeTree& t, std::optional<std::string> envd_cgroup = std::nullopt) {
  CgroupFreezer::Config c;
  c.root = t.root.string();
  c.envd_cgroup = std::move(envd_cgroup);
  return CgroupFreezer(c);
}

}  // namespace

TEST_CASE("parse_events_frozen reads the frozen key") {
  CHECK(envd::pause::parse_events_frozen("populated 1\nfrozen 1\n") == true);
  CHECK(envd::pause::parse_events_frozen("populated 0\nfrozen 0\n") == false);
  CHECK_FALSE(envd::pause::parse_events_frozen("populated 1\n").has_value());
  CHECK_FALSE(envd::pause::parse_events_frozen("").has_value());
}

TEST_CASE("relative_self_cgroup: inside, at, and outside the root") {
  using envd::pause::relative_self_cgroup;
  CHECK(relative_self_cgroup("0::/system.slice/envd.service\n", "/sys/fs/cgroup", "/sys/fs/cgroup") ==
        std::optional<std::string>("system.slice/envd.service"));
  CHECK(relative_self_cgroup("0::/\n", "/sys/fs/cgroup", "/sys/fs/cgroup") == std::optional<std::string>(""));
  // A private root the daemon is not inside (the tests' case): no ancestry under it.
  CHECK_FALSE(relative_self_cgroup("0::/\n", "/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/t1").has_value());
  CHECK_FALSE(relative_self_cgroup("0::/t10/envd\n", "/u", "/u/t1").has_value());  // a prefix is not a parent
  CHECK(relative_self_cgroup("9:name=systemd:/\n0::/t1/envd\n", "/u", "/u/t1") == std::optional<std::string>("envd"));
  CHECK_FALSE(relative_self_cgroup("4:memory:/x\n", "/u", "/u").has_value());  // cgroup v1 only
}

TEST_CASE("legacy freeze writes user and ptys only, and thaw undoes it") {
  FakeTree t;
  t.add("user");
  t.add("ptys");
  t.add("socats");
  t.add("other");
  auto f = make(t);
  auto r = f.freeze(FreezeMode::legacy, 8192);
  CHECK(r.requested == 2);
  CHECK(r.frozen == 2);
  CHECK(r.visited == 0);
  CHECK(r.failed == 0);
  CHECK(t.freeze("user") == '1');
  CHECK(t.freeze("ptys") == '1');
  CHECK(t.freeze("socats") == '0');
  CHECK(t.freeze("other") == '0');
  CHECK(f.freeze_in_effect());
  // Not frozen yet according to cgroup.events; then the "kernel" catches up.
  CHECK(f.observe().not_frozen == 2);
  t.set_events("user", true);
  t.set_events("ptys", true);
  CHECK(f.observe().not_frozen == 0);
  auto th = f.thaw();
  CHECK(th.errors.empty());
  CHECK(th.thawed == 2);
  CHECK(t.freeze("user") == '0');
  CHECK(t.freeze("ptys") == '0');
  CHECK_FALSE(f.freeze_in_effect());
}

TEST_CASE("hierarchy freeze: top-level cgroups frozen whole, envd's ancestry descended, allowlist kept") {
  FakeTree t;
  t.add("user");
  t.add("user/a");
  t.add("ptys");
  t.add("socats");
  t.add("other");
  t.add("other/b");
  t.add("system.slice");
  t.add("system.slice/envd.service");
  t.add("system.slice/cron.service");
  t.add("system.slice/systemd-journald.service");
  auto f = make(t, "system.slice/envd.service");
  auto r = f.freeze(FreezeMode::hierarchy, 8192);
  CHECK(r.json().find("\"mode\":\"hierarchy\"") != std::string::npos);
  // Visited: other, ptys, socats, system.slice, user, then system.slice's three children.
  CHECK(r.visited == 8);
  CHECK(r.allowlisted == 2);  // socats, journald
  CHECK(r.requested == 4);    // other, ptys, user, system.slice/cron.service
  CHECK(t.freeze("other") == '1');
  CHECK(t.freeze("other/b") == '0');  // frozen through its parent, not written
  CHECK(t.freeze("system.slice") == '0');
  CHECK(t.freeze("system.slice/envd.service") == '0');
  CHECK(t.freeze("system.slice/cron.service") == '1');
  CHECK(t.freeze("system.slice/systemd-journald.service") == '0');
  CHECK(t.freeze("socats") == '0');
  CHECK_FALSE(r.truncated);
  f.thaw();
  for (auto c : {"other", "user", "ptys", "system.slice/cron.service"}) CHECK(t.freeze(c) == '0');
}

TEST_CASE("hierarchy freeze stops at maxCgroups and says truncated; legacy pair still frozen") {
  FakeTree t;
  for (auto c : {"a", "b", "c", "d", "user", "ptys"}) t.add(c);
  auto f = make(t);
  auto r = f.freeze(FreezeMode::hierarchy, 2);
  CHECK(r.truncated);
  CHECK(r.visited == 2);
  CHECK(t.freeze("a") == '1');
  CHECK(t.freeze("b") == '1');
  CHECK(t.freeze("c") == '0');
  CHECK(t.freeze("user") == '1');
  CHECK(t.freeze("ptys") == '1');
  CHECK(r.requested == 4);
  f.thaw();
}

TEST_CASE("cgroups the guest froze itself are counted and never thawed by us") {
  FakeTree t;
  t.add("user");
  t.add("ptys", /*frozen=*/true);
  t.add("other");
  t.add("other/mine", /*frozen=*/true);
  auto f = make(t);
  auto r = f.freeze(FreezeMode::legacy, 8192);
  CHECK(r.pre_frozen == 2);
  f.thaw();
  CHECK(t.freeze("user") == '0');
  CHECK(t.freeze("other/mine") == '1');
  // ptys is one of the legacy pair: a thaw always thaws it (envd's /init does).
  CHECK(t.freeze("ptys") == '0');
}

TEST_CASE("audit counts frozen, escaped and violations") {
  FakeTree t;
  t.add("user");
  t.add("user/a");
  t.add("ptys");
  t.add("envd");
  t.add("socats");
  auto f = make(t, "envd");
  f.freeze(FreezeMode::hierarchy, 8192);
  t.set_events("user", true);
  t.set_events("ptys", true);    // user/a escaped: not frozen inside a frozen cgroup
  t.set_events("socats", true);  // an allowlisted cgroup found frozen: a violation
  auto a = f.audit(8192);
  CHECK(a.visited == 5);
  CHECK(a.frozen == 3);
  CHECK(a.escaped == 1);
  CHECK(a.violations == 1);
  CHECK(a.json() == "{\"visited\":5,\"frozen\":3,\"escaped\":1,\"violations\":1,\"truncated\":false}");
  f.thaw();
}

TEST_CASE(
    "thaw without a freeze thaws the legacy pair; missing cgroups are no error; a disabled freezer does nothing") {
  FakeTree t;
  t.add("user", true);
  auto f = make(t);
  auto r = f.thaw();
  CHECK(r.errors.empty());
  CHECK(r.thawed == 1);
  CHECK(t.freeze("user") == '0');
  CgroupFreezer off{CgroupFreezer::Config{}};
  CHECK_FALSE(off.enabled());
  auto fr = off.freeze(FreezeMode::hierarchy, 10);
  // As envd's no-op manager: the legacy pair requested, unobservable, never frozen.
  CHECK(fr.mode == FreezeMode::legacy);
  CHECK(fr.requested == 2);
  CHECK(fr.frozen == 0);
  CHECK(off.observe().unobservable == 2);
  CHECK(off.observe().not_frozen == 0);
  CHECK(off.thaw().errors.empty());
}

TEST_CASE("FreezeResult JSON has the reference's fields in its order") {
  envd::pause::FreezeResult r;
  r.requested = 2;
  r.frozen = 2;
  CHECK(r.json() ==
        "{\"allowlisted\":0,\"failed\":0,\"frozen\":2,\"mode\":\"legacy\",\"notFrozen\":0,\"preFrozen\":0,"
        "\"requested\":2,\"sweepMs\":0,\"truncated\":false,\"unobservable\":0,\"visited\":0,\"waitMs\":0}");
  CHECK(envd::pause::parse_mode("hierarchy") == FreezeMode::hierarchy);
  CHECK(envd::pause::parse_mode("bogus") == FreezeMode::legacy);
}
