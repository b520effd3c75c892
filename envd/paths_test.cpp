#include "envd/paths.h"

#include <doctest/doctest.h>

using namespace envd;

TEST_CASE("paths: clean like Go's filepath.Clean") {
  CHECK(clean_path("/a/b/../c/./d/") == "/a/c/d");
  CHECK(clean_path("a//b") == "a/b");
  CHECK(clean_path("/..") == "/");
  CHECK(clean_path("../x") == "../x");
  CHECK(clean_path("") == ".");
  CHECK(clean_path("/") == "/");
}

TEST_CASE("paths: expand and resolve (contract 3.2)") {
  User u;
  u.name = "user";
  u.home = "/home/user";
  CHECK(expand_and_resolve("", u, "").path == "");
  CHECK(expand_and_resolve("", u, "/work").path == "/work");
  CHECK(expand_and_resolve("~", u, "/work").path == "/home/user");
  CHECK(expand_and_resolve("~/a/../b", u, "").path == "/home/user/b");
  CHECK(expand_and_resolve("/a/../b", u, "/work").path == "/a/../b");     // absolute: unchanged
  CHECK(expand_and_resolve("x/y", u, "/work").path == "/home/user/x/y");  // relative: against home
  CHECK(expand_and_resolve("../../etc", u, "").path == "/etc");
  auto bad = expand_and_resolve("~root/x", u, "");
  CHECK_FALSE(bad.ok());
  CHECK(bad.error == "failed to expand path '~root/x' for user 'user': cannot expand user-specific home dir");
}
