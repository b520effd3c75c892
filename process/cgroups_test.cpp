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
