#include "envd/users.h"

#include <doctest/doctest.h>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>

using namespace envd;

namespace {
std::string write_temp(const std::string& content) {
  char name[] = "/tmp/envd-users-XXXXXX";
  int fd = mkstemp(name);
  REQUIRE(fd >= 0);
  ::close(fd);
  std::ofstream(name) << content;
  return name;
}
}  // namespace

TEST_CASE("users: passwd and group parsing with supplementary groups") {
  auto passwd = write_temp(
      "root:x:0:0:root:/root:/bin/bash\n# comment\nbroken line\nuser:x:1000:1000::/home/user:/bin/sh\n"
      "bad:x:notanumber:1::/:/bin/sh\n");
  auto group = write_temp("root:x:0:\nuser:x:1000:\nsudo:x:27:user,other\ndocker:x:999:other,user\n");
  UserDb db(passwd, group);
  auto u = db.lookup("user");
  REQUIRE(u);
  CHECK(u->uid == 1000);
  CHECK(u->gid == 1000);
  CHECK(u->home == "/home/user");
  CHECK(u->shell == "/bin/sh");
  CHECK(u->groups == std::vector<std::uint32_t>{1000, 27, 999});
  CHECK(db.lookup("root")->groups == std::vector<std::uint32_t>{0});
  CHECK_FALSE(db.lookup("bad"));
  CHECK_FALSE(db.lookup("nobody-here"));
  CHECK_FALSE(db.lookup(""));
  CHECK(db.user_name(1000) == "user");
  CHECK(db.user_name(4242) == "4242");
  CHECK(db.group_name(27) == "sudo");
  CHECK(db.group_name(5) == "5");

  // A user added later is seen without restarting.
  std::ofstream(passwd, std::ios::app) << "late:x:1001:1001::/home/late:/bin/sh\n";
  CHECK(db.lookup("late").has_value());
  std::remove(passwd.c_str());
  std::remove(group.c_str());
}
