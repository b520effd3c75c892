#include "envd/access.h"

#include <doctest/doctest.h>

using namespace envd;

namespace {
http::RequestHead head(std::string method, std::string path, http::Headers headers = {}) {
  http::RequestHead h;
  h.method = std::move(method);
  h.path = std::move(path);
  h.target = h.path;
  h.headers = std::move(headers);
  return h;
}
}  // namespace

TEST_CASE("access: constant-time comparison") {
  CHECK(constant_time_equal("", ""));
  CHECK(constant_time_equal("abc", "abc"));
  CHECK_FALSE(constant_time_equal("abc", "abd"));
  CHECK_FALSE(constant_time_equal("abc", "ab"));
  CHECK_FALSE(constant_time_equal("ab", "abc"));
  CHECK_FALSE(constant_time_equal("", "a"));
  CHECK_FALSE(constant_time_equal(std::string_view("a\0", 2), "a"));
}

TEST_CASE("access: the exempt set is exact") {
  CHECK(token_exempt("GET", "/health"));
  CHECK(token_exempt("GET", "/files"));
  CHECK(token_exempt("POST", "/files"));
  CHECK(token_exempt("POST", "/init"));
  CHECK_FALSE(token_exempt("HEAD", "/files"));
  CHECK_FALSE(token_exempt("POST", "/files/compose"));
  CHECK_FALSE(token_exempt("GET", "/health/"));
  CHECK_FALSE(token_exempt("GET", "/files/"));
  CHECK_FALSE(token_exempt("POST", "/health"));
  CHECK_FALSE(token_exempt("GET", "/init"));
  CHECK_FALSE(token_exempt("get", "/health"));
  CHECK_FALSE(token_exempt("GET", "/metrics"));
  CHECK_FALSE(token_exempt("GET", "/envs"));
  CHECK_FALSE(token_exempt("POST", "/process.Process/List"));
}

TEST_CASE("access: the token gate") {
  SandboxState s;
  CHECK_FALSE(check_access_token(s, head("GET", "/envs")));  // no token: open
  s.access_token = "secret";
  auto r = check_access_token(s, head("GET", "/envs"));
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(http::find_header(r->headers, "content-type") == "application/json; charset=utf-8");
  CHECK(http::find_header(r->headers, "x-content-type-options") == "nosniff");
  CHECK(r->body ==
        "{\"code\":401,\"message\":\"unauthorized access, please provide a valid access token or method signing if "
        "supported\"}\n");
  CHECK(check_access_token(s, head("POST", "/process.Process/List", {{"x-access-token", "wrong"}})));
  CHECK(check_access_token(s, head("GET", "/envs", {{"x-access-token", "secre"}})));
  CHECK_FALSE(check_access_token(s, head("GET", "/envs", {{"x-access-token", "secret"}})));
  CHECK_FALSE(check_access_token(s, head("GET", "/health")));
  CHECK_FALSE(check_access_token(s, head("POST", "/init")));
  CHECK(check_access_token(s, head("POST", "/files/compose")));
  CHECK(check_access_token(s, head("GET", "/nowhere")));  // 401 before 404
}

TEST_CASE("access: a Basic header naming an unknown user is refused on REST paths") {
  SandboxState s;
  const http::Headers bogus{{"authorization", "Basic Ym9ndXMtdXNlcjo="}};  // "bogus-user:"
  auto r = check_basic_user(s, head("GET", "/envs", bogus), false);
  REQUIRE(r);
  CHECK(r->status == 401);
  CHECK(r->body == R"({"code":"unauthenticated","message":"invalid username: 'bogus-user'"})");
  CHECK_FALSE(check_basic_user(s, head("GET", "/health", bogus), false));  // the liveness probe stays open
  CHECK_FALSE(check_basic_user(s, head("POST", "/process.Process/List", bogus), true));  // RPC layer's job
  CHECK_FALSE(check_basic_user(s, head("GET", "/envs", {{"authorization", "Basic cm9vdDo="}}), false));  // root
  CHECK_FALSE(check_basic_user(s, head("GET", "/envs", {{"authorization", "Bearer x"}}), false));
  CHECK_FALSE(check_basic_user(s, head("GET", "/envs"), false));
}
