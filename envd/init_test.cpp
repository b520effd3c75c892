#include "envd/init.h"

#include <doctest/doctest.h>
#include <limits>

using namespace envd;

TEST_CASE("init: body parsing as Go's encoding/json") {
  auto empty = parse_init_request("");
  REQUIRE(empty);
  CHECK_FALSE(empty->access_token);
  CHECK_FALSE(empty->env_vars);
  CHECK(parse_init_request("  null "));
  CHECK(parse_init_request("{}"));

  auto r = parse_init_request(
      R"({"ACCESSTOKEN":"t1","envvars":{"A":"1","B":null},"DefaultUser":"user","defaultWorkdir":"/w",)"
      R"("timestamp":"2026-01-02T03:04:05.5Z","unknown":[1,{"x":"}"}],"hyperloopIP":"10.0.0.1",)"
      R"("caBundle":"PEM","volumeMounts":[{"nfs_target":"h:/x","path":"/mnt"}],"lifecycleID":"L"})");
  REQUIRE(r);
  CHECK(r->access_token == "t1");
  REQUIRE(r->env_vars);
  CHECK(r->env_vars->at("A") == "1");
  CHECK(r->env_vars->at("B") == "");
  CHECK(r->default_user == "user");
  CHECK(r->default_workdir == "/w");
  CHECK(r->timestamp_ns == parse_rfc3339("2026-01-02T03:04:05.5Z"));
  CHECK(r->hyperloop_ip == "10.0.0.1");
  CHECK(r->ca_bundle == "PEM");
  REQUIRE(r->volume_mounts);
  CHECK(r->volume_mounts->at(0).nfs_target == "h:/x");
  CHECK(r->volume_mounts->at(0).path == "/mnt");
  CHECK(r->lifecycle_id == "L");

  // null means absent; a later member overwrites an earlier one (any letter case).
  auto n = parse_init_request(R"({"accessToken":"a","accesstoken":null,"envVars":null,"timestamp":null})");
  REQUIRE(n);
  CHECK_FALSE(n->access_token);
  CHECK_FALSE(n->env_vars);
  CHECK_FALSE(n->timestamp_ns);
  CHECK(parse_init_request(R"({"accessToken":"a","AccessToken":"b"})")->access_token == "b");
  // An escaped key still names the field (Go decodes keys first).
  CHECK(parse_init_request(R"({"access\u0054oken":"k"})")->access_token == "k");
}

TEST_CASE("init: invalid bodies are refused (400)") {
  std::string why;
  CHECK_FALSE(parse_init_request("{", &why));
  CHECK(why == "invalid JSON");
  CHECK_FALSE(parse_init_request("[]"));
  CHECK_FALSE(parse_init_request("42"));
  CHECK_FALSE(parse_init_request(R"({"accessToken":""})"));
  CHECK_FALSE(parse_init_request(R"({"accessToken":"a\\b"})"));
  CHECK_FALSE(parse_init_request(R"({"accessToken":"\u0041"})"));  // any escape, as envd's raw-byte check
  CHECK_FALSE(parse_init_request(R"({"accessToken":5})"));
  CHECK_FALSE(parse_init_request(R"({"accessToken":{}})"));
  CHECK_FALSE(parse_init_request(R"({"envVars":[]})"));
  CHECK_FALSE(parse_init_request(R"({"envVars":{"A":1}})"));
  CHECK_FALSE(parse_init_request(R"({"defaultUser":5})"));
  CHECK_FALSE(parse_init_request(R"({"timestamp":"yesterday"})"));
  CHECK_FALSE(parse_init_request(R"({"timestamp":12})"));
  CHECK_FALSE(parse_init_request(R"({"volumeMounts":{}})"));
  CHECK_FALSE(parse_init_request(R"({"volumeMounts":[{"path":1}]})"));
  CHECK_FALSE(parse_init_request(R"({"caBundle":true})"));
}

TEST_CASE("init: RFC 3339 timestamps") {
  CHECK(parse_rfc3339("1970-01-01T00:00:00Z") == 0);
  CHECK(parse_rfc3339("1970-01-01T00:00:01.000000001Z") == 1'000'000'001);
  CHECK(parse_rfc3339("1970-01-01T01:00:00+01:00") == 0);
  CHECK(parse_rfc3339("1969-12-31T23:00:00-01:00") == 0);
  CHECK(parse_rfc3339("2024-02-29T12:00:00Z") == std::int64_t{1709208000} * 1'000'000'000);
  CHECK(parse_rfc3339("2024-02-29T12:00:00.1234567899Z") == std::int64_t{1709208000} * 1'000'000'000 + 123456789);
  CHECK_FALSE(parse_rfc3339("2023-02-29T12:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2024-01-01 00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2024-01-01T24:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2024-01-01T00:00:60Z"));
  CHECK_FALSE(parse_rfc3339("2024-01-01T00:00:00"));
  CHECK_FALSE(parse_rfc3339("2024-01-01T00:00:00.Z"));
  CHECK_FALSE(parse_rfc3339("2024-01-01T00:00:00+0100"));
  CHECK_FALSE(parse_rfc3339("2024-01-01T00:00:00Zjunk"));
}

TEST_CASE("init: token validation matrix") {
  const std::optional<std::string> none;
  const std::optional<std::string> cur = "cur";
  // No token yet: anything goes (first-time setup).
  CHECK(validate_init_token(none, none, std::nullopt) == InitAuth::ok);
  CHECK(validate_init_token(none, "new", std::nullopt) == InitAuth::ok);
  // Token set: the body token must match, or the header must prove the caller holds it.
  CHECK(validate_init_token(cur, "cur", std::nullopt) == InitAuth::ok);
  CHECK(validate_init_token(cur, "new", "cur") == InitAuth::ok);
  CHECK(validate_init_token(cur, none, "cur") == InitAuth::ok);
  CHECK(validate_init_token(cur, "new", std::nullopt) == InitAuth::mismatch);
  CHECK(validate_init_token(cur, "new", "wrong") == InitAuth::mismatch);
  CHECK(validate_init_token(cur, "cu", std::nullopt) == InitAuth::mismatch);
  CHECK(validate_init_token(cur, none, std::nullopt) == InitAuth::reset_not_authorized);
  CHECK(validate_init_token(cur, none, "wrong") == InitAuth::reset_not_authorized);
  CHECK(init_auth_message(InitAuth::mismatch) == "access token validation failed");
  CHECK(init_auth_message(InitAuth::reset_not_authorized) == "access token reset not authorized");
}

TEST_CASE("init: apply with replace semantics and timestamp ordering") {
  SandboxState s;
  s.internal_env["E2B_SANDBOX"] = "true";
  InitRequest a;
  a.env_vars = std::map<std::string, std::string>{{"A", "1"}, {"B", "2"}, {"E2B_SANDBOX", "x"}};
  a.access_token = "t";
  a.timestamp_ns = 100;
  a.default_user = "user";
  a.default_workdir = "/home/user";
  auto o = apply_init(s, a);
  CHECK(o.applied);
  CHECK(s.access_token == "t");
  CHECK(s.default_user == "user");
  CHECK(s.default_workdir == "/home/user");
  CHECK(s.global_env().at("E2B_SANDBOX") == "true");  // internal vars win
  CHECK(s.global_env().at("A") == "1");

  // Older: skipped entirely (token, env untouched).
  InitRequest older;
  older.timestamp_ns = 99;
  older.env_vars = std::map<std::string, std::string>{};
  CHECK_FALSE(apply_init(s, older).applied);
  CHECK(s.access_token == "t");
  CHECK(s.user_env.size() == 3);

  // Equal counts as newer; envVars replace; absent token clears; empty user/workdir are ignored.
  InitRequest same;
  same.timestamp_ns = 100;
  same.env_vars = std::map<std::string, std::string>{{"C", "3"}};
  same.default_user = "";
  same.default_workdir = "";
  CHECK(apply_init(s, same).applied);
  CHECK(s.user_env == std::map<std::string, std::string>{{"C", "3"}});
  CHECK_FALSE(s.access_token);
  CHECK(s.default_user == "user");
  CHECK(s.default_workdir == "/home/user");

  // No timestamp: applied, ordering state unchanged; envVars absent: unchanged; {} clears.
  InitRequest no_ts;
  CHECK(apply_init(s, no_ts).applied);
  CHECK(s.user_env.size() == 1);
  CHECK(s.last_init_time_ns == 100);
  no_ts.env_vars = std::map<std::string, std::string>{};
  apply_init(s, no_ts);
  CHECK(s.user_env.empty());

  InitRequest orch;
  orch.hyperloop_ip = "1.2.3.4";
  orch.ca_bundle = "x";
  orch.volume_mounts = std::vector<VolumeMount>{};
  orch.lifecycle_id = "l";
  CHECK(apply_init(s, orch).ignored ==
        std::vector<std::string>{"hyperloopIP", "caBundle", "volumeMounts", "lifecycleID"});
}

TEST_CASE("init: clock is set only outside [-50 ms, +5 s] of the timestamp") {
  const std::int64_t ts = 1'000'000'000'000;
  CHECK_FALSE(clock_needs_setting(ts, ts));
  CHECK_FALSE(clock_needs_setting(ts - 50'000'000, ts));
  CHECK(clock_needs_setting(ts - 50'000'001, ts));
  CHECK_FALSE(clock_needs_setting(ts + 5'000'000'000, ts));
  CHECK(clock_needs_setting(ts + 5'000'000'001, ts));
  // Found by fuzzing: a timestamp far outside 1678..2262 saturates; comparing must not overflow.
  CHECK(clock_needs_setting(0, std::numeric_limits<std::int64_t>::min()));
  CHECK(clock_needs_setting(0, std::numeric_limits<std::int64_t>::max()));
}

TEST_CASE("init: nesting deeper than the limit is refused without building it (issue 7, item 3)") {
  std::string deep = R"({"unknown":)" + std::string(100'000, '[') + std::string(100'000, ']') + "}";
  CHECK(check_init_json(deep, 32) == InitCheck::too_deep);
  std::string why;
  CHECK_FALSE(parse_init_request(deep, &why, 32));
  CHECK(why == "JSON nested deeper than 32 levels");
  // At the limit: fine (the top-level object is level 1).
  std::string ok = R"({"unknown":)" + std::string(31, '[') + std::string(31, ']') + "}";
  CHECK(check_init_json(ok, 32) == InitCheck::ok);
  CHECK(parse_init_request(ok, nullptr, 32));
  CHECK(check_init_json(R"({"a":)" + std::string(32, '[') + std::string(32, ']') + "}", 32) == InitCheck::too_deep);
  CHECK(check_init_json("{", 32) == InitCheck::invalid);
  CHECK(check_init_json("", 32) == InitCheck::ok);
}

TEST_CASE("init: the token check step builds nothing but the token and the timestamp") {
  auto r = check_init_request(R"({"accessToken":"t","envVars":{"A":"1"},"volumeMounts":[{"path":"/x"}],)"
                              R"("defaultUser":"u","timestamp":"2026-01-02T03:04:05Z","unknown":[[1],{"k":[]}]})");
  REQUIRE(r);
  CHECK(r->access_token == "t");
  CHECK(r->timestamp_ns);
  CHECK_FALSE(r->env_vars);
  CHECK_FALSE(r->volume_mounts);
  CHECK_FALSE(r->default_user);
  // ...yet it refuses every type error the full decode refuses (400 before 401, as envd).
  CHECK_FALSE(check_init_request(R"({"envVars":{"A":1}})"));
  CHECK_FALSE(check_init_request(R"({"volumeMounts":[{"path":1}]})"));
  CHECK_FALSE(check_init_request(R"({"defaultUser":5})"));
  CHECK_FALSE(check_init_request(R"({"accessToken":""})"));
  auto full = decode_init_request(R"({"envVars":{"A":"1"},"volumeMounts":[null,{"PATH":"/x"}]})");
  REQUIRE(full);
  CHECK(full->env_vars->at("A") == "1");
  CHECK(full->volume_mounts->size() == 2);
  CHECK(full->volume_mounts->at(1).path == "/x");
}
