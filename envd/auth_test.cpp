#include "envd/auth.h"

#include <doctest/doctest.h>

using namespace envd;

TEST_CASE("auth: Basic user parsing") {
  CHECK(basic_auth_user("Basic dXNlcjo=") == "user");      // "user:"
  CHECK(basic_auth_user("basic cm9vdDpwdw==") == "root");  // "root:pw", password ignored
  CHECK(basic_auth_user("Basic Og==") == "");              // ":" → empty name
  CHECK_FALSE(basic_auth_user(std::nullopt));
  CHECK_FALSE(basic_auth_user("Bearer abc"));
  CHECK_FALSE(basic_auth_user("Basic !!!"));
  CHECK_FALSE(basic_auth_user("Basic dXNlcg=="));  // "user" without a colon
}

TEST_CASE("auth: unknown users are unauthenticated; no header means the default user") {
  SandboxState state;
  User u;
  REQUIRE(resolve_request_user(state, std::nullopt, u).ok());
  CHECK(u.name == "root");
  auto st = resolve_request_user(state, "Basic Ym9ndXMtdXNlcjo=", u);  // "bogus-user:"
  CHECK(st.code == rpc::Code::unauthenticated);
  CHECK(st.message == "invalid username: 'bogus-user'");
  CHECK(resolve_request_user(state, "Basic Og==", u).message == "invalid username: ''");
  state.default_user.clear();
  CHECK(resolve_request_user(state, std::nullopt, u).message == "no user specified");
}
