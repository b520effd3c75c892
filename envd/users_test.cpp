#include "envd/users.h"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

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

TEST_CASE("users: a rewrite of the same size with the old mtime is still seen (ctime, inode)") {
  auto passwd = write_temp("aaaa:x:1000:1000::/home/aaaa:/bin/sh\n");
  auto group = write_temp("aaaa:x:1000:\n");
  UserDb db(passwd, group);
  CHECK(db.user_name(1000) == "aaaa");
  struct stat before {};
  REQUIRE(::stat(passwd.c_str(), &before) == 0);
  // Same length, and the mtime put back: only ctime (and, after a rename, the inode) tells.
  auto next = write_temp("bbbb:x:1000:1000::/home/bbbb:/bin/sh\n");
  REQUIRE(std::rename(next.c_str(), passwd.c_str()) == 0);
  struct timespec times[2] = {before.st_atim, before.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, passwd.c_str(), times, 0) == 0);
  CHECK(db.user_name(1000) == "bbbb");
  std::remove(passwd.c_str());
  std::remove(group.c_str());
}

TEST_CASE("users: one instance shared by threads (system_user_db)") {
  const UserDb& db = system_user_db();
  CHECK(&db == &system_user_db());
  std::vector<std::thread> threads;
  std::vector<std::string> names(4);
  for (std::size_t i = 0; i < names.size(); ++i) {
    threads.emplace_back([&db, &names, i] {
      for (int k = 0; k < 200; ++k) names[i] = db.user_name(0);
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& n : names) CHECK(n == "root");
}
