#include "fs/compose.h"

#include <dirent.h>
#include <doctest/doctest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "tests/test_files.h"

using namespace envd::fs;
using namespace envd::testing;

namespace {

std::vector<ComposeSource> srcs(std::initializer_list<std::string> paths) {
  std::vector<ComposeSource> out;
  for (auto& p : paths) out.push_back({p, p});
  return out;
}

}  // namespace

TEST_CASE("compose: request parsing and its 400s") {
  WriteFailure f;
  auto r = parse_compose_request(R"({"source_paths":["a","b"],"destination":"d","username":"user","x":1})", f);
  REQUIRE(r);
  CHECK(r->source_paths == std::vector<std::string>{"a", "b"});
  CHECK(r->destination == "d");
  CHECK(*r->username == "user");
  CHECK_FALSE(parse_compose_request("x", f));
  CHECK(f.status == 400);
  CHECK(f.message.rfind("invalid request body: ", 0) == 0);
  CHECK_FALSE(parse_compose_request(R"({"source_paths":3})", f));
  CHECK(f.message.rfind("invalid request body: ", 0) == 0);
  CHECK_FALSE(parse_compose_request("null", f));
  CHECK(f.message == "source_paths must not be empty");
  CHECK_FALSE(parse_compose_request(R"({"source_paths":[]})", f));
  CHECK(f.message == "source_paths must not be empty");
  CHECK_FALSE(parse_compose_request(R"({"source_paths":["a"]})", f));
  CHECK(f.message == "destination is required");
}

TEST_CASE("compose: concatenates, owned by the user, sources removed, no temp file") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  write_file(fs.path("a"), "aa");
  write_file(fs.path("b"), "bb");
  write_file(fs.path("dest"), "old");
  struct stat st {};
  REQUIRE_FALSE(compose_files(srcs({fs.path("a"), fs.path("b")}), fs.path("dest"), 1234, 1235, nullptr, &st));
  CHECK(read_file(fs.path("dest")) == "aabb");
  CHECK(st.st_uid == 1234);
  CHECK(st.st_gid == 1235);
  CHECK(fs.entries() == std::set<std::string>{"dest"});
}

TEST_CASE("compose: errors leave the sources and no temp file") {
  SmallTmpfs fs;
  NEED_TMPFS(fs);
  write_file(fs.path("a"), "aa");
  ::mkdir(fs.path("d").c_str(), 0755);
  auto f = compose_files(srcs({fs.path("a"), fs.path("zz")}), fs.path("out"), 0, 0, nullptr, nullptr);
  REQUIRE(f);
  CHECK(f->status == 404);
  CHECK(f->message == "source file not found: " + fs.path("zz"));
  f = compose_files(srcs({fs.path("d")}), fs.path("out"), 0, 0, nullptr, nullptr);
  REQUIRE(f);
  CHECK(f->status == 400);
  CHECK(f->message == "source path is not a regular file: " + fs.path("d"));
  f = compose_files(srcs({fs.path("zz"), fs.path("a")}), fs.path("a"), 0, 0, nullptr, nullptr);
  REQUIRE(f);
  CHECK(f->message == "source path \"" + fs.path("a") + "\" cannot be the same as destination");
  f = compose_files(srcs({fs.path("a")}), fs.path("d"), 0, 0, nullptr, nullptr);
  REQUIRE(f);
  CHECK(f->message == "path is a directory: " + fs.path("d"));

  // Disk full: 507, nothing left behind.
  write_file(fs.path("big"), std::string(600 * 1024, 'b'));
  f = compose_files(srcs({fs.path("big"), fs.path("a")}), fs.path("out"), 0, 0, nullptr, nullptr);
  REQUIRE(f);
  CHECK(f->status == 507);
  CHECK(f->message == "not enough disk space available");
  // Cancelled: nothing left behind either.
  std::atomic<bool> flag{true};
  f = compose_files(srcs({fs.path("a")}), fs.path("out"), 0, 0, &flag, nullptr);
  REQUIRE(f);
  CHECK(fs.entries() == std::set<std::string>{"a", "big", "d"});
  CHECK(read_file(fs.path("a")) == "aa");
}
