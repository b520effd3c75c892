#include "fs/files_common.h"

#include <ctime>

#include "envd/rest/signature.h"

#include <doctest/doctest.h>

using namespace envd;
using namespace envd::fs;

namespace {

http::RequestHead get(std::string query, http::Headers headers = {}) {
  http::RequestHead h;
  h.method = "GET";
  h.path = "/files";
  h.query = std::move(query);
  h.target = "/files?" + h.query;
  h.headers = std::move(headers);
  return h;
}

const Reply* reply_of(const std::variant<FilesRequest, Reply>& r) { return std::get_if<Reply>(&r); }

std::string message_of(const std::variant<FilesRequest, Reply>& r) {
  auto* reply = reply_of(r);
  REQUIRE(reply != nullptr);
  return reply->body;
}

std::string json(int code, std::string_view message) {
  return "{\"code\":" + std::to_string(code) + ",\"message\":\"" + std::string(message) + "\"}\n";
}

}  // namespace

TEST_CASE("files signature: the SDKs' recipe (vectors computed with node's crypto, as the JS SDK does)") {
  CHECK(rest::files_signature("/path/to/demo.txt", "read", "root", "test-access-token", std::nullopt) ==
        "v1_qOWFYWCQQ3p9s3s6BDh4BfUnX3WdXUzDw8T1e7dkoK8");
  CHECK(rest::files_signature("/path/to/demo.txt", "write", "user", "test-access-token", 1700000000) ==
        "v1_P3896g/ta3T3OqACwKiFBBZDOKEZXQbG5jejH77ndsg");
  CHECK(rest::files_signature("a b+c%d&\xC3\xBC", "read", "", "tok", std::nullopt) ==
        "v1_o59eD25c0ZBRiQ1xXweGPytgHzVq/ODfx60IZnGjk3M");
}

TEST_CASE("prelude without a token: user and path params") {
  SandboxState state;
  auto r = files_prelude(state, get("path=%2Ftmp%2Fa+b&username=root"), FileOp::read, 0);
  auto* ok = std::get_if<FilesRequest>(&r);
  REQUIRE(ok != nullptr);
  CHECK(ok->path == "/tmp/a b");
  CHECK(ok->username == "root");
  CHECK(ok->user.name == "root");

  auto d = files_prelude(state, get(""), FileOp::read, 0);
  REQUIRE(std::get_if<FilesRequest>(&d) != nullptr);
  CHECK(std::get<FilesRequest>(d).user.name == "root");
  CHECK_FALSE(std::get<FilesRequest>(d).path.has_value());

  CHECK(message_of(files_prelude(state, get("username=nobody-zz"), FileOp::read, 0)) ==
        json(401, "error looking up user 'nobody-zz': user: unknown user nobody-zz"));
  // Present but empty is a lookup of "", not the default user.
  CHECK(message_of(files_prelude(state, get("username="), FileOp::read, 0)) ==
        json(401, "error looking up user '': user: unknown user "));

  state.default_user.clear();
  CHECK(message_of(files_prelude(state, get("path=/x"), FileOp::read, 0)) == json(400, "username not provided"));
}

TEST_CASE("prelude: binding errors are text/plain 400s, before signing") {
  SandboxState state;
  state.access_token = "tok";
  auto r = files_prelude(state, get("path=a&path=b"), FileOp::read, 0);
  REQUIRE(reply_of(r));
  CHECK(reply_of(r)->status == 400);
  CHECK(reply_of(r)->body == "Invalid format for parameter path: multiple values for single value parameter 'path'\n");
  CHECK(reply_of(r)->headers.front().second == "text/plain; charset=utf-8");
  auto e = files_prelude(state, get("signature_expiration=x"), FileOp::read, 0);
  REQUIRE(reply_of(e));
  CHECK(reply_of(e)->status == 400);
}

TEST_CASE("prelude with a token: header, signature, expiration") {
  SandboxState state;
  state.access_token = "tok";
  CHECK(std::holds_alternative<FilesRequest>(
      files_prelude(state, get("path=/x", {{"x-access-token", "tok"}}), FileOp::read, 0)));
  CHECK(message_of(files_prelude(state, get("path=/x", {{"x-access-token", "tok2"}}), FileOp::read, 0)) ==
        json(401, "access token present in header but does not match"));
  CHECK(message_of(files_prelude(state, get("path=/x"), FileOp::read, 0)) ==
        json(401, "missing signature query parameter"));

  // Decoded values are signed: `+` is a space, %2B a plus.
  std::string sig = rest::files_signature("/a b+", "read", "", "tok", std::nullopt);
  std::string enc;
  for (char c : sig) enc += c == '+' ? std::string("%2B") : c == '/' ? std::string("%2F") : std::string(1, c);
  CHECK(std::holds_alternative<FilesRequest>(
      files_prelude(state, get("path=/a+b%2B&signature=" + enc), FileOp::read, 0)));
  CHECK(message_of(files_prelude(state, get("path=/a+b%2B&signature=" + enc), FileOp::write, 0)) ==
        json(401, "invalid signature"));

  // Expiration: part of the signed text (as its decimal), checked after the signature.
  std::string sig_exp = rest::files_signature("/x", "read", "root", "tok", 100);
  std::string enc_exp;
  for (char c : sig_exp) enc_exp += c == '+' ? std::string("%2B") : c == '/' ? std::string("%2F") : std::string(1, c);
  std::string base = "path=/x&username=root&signature=" + enc_exp;
  CHECK(std::holds_alternative<FilesRequest>(
      files_prelude(state, get(base + "&signature_expiration=100"), FileOp::read, 100)));
  CHECK(std::holds_alternative<FilesRequest>(
      files_prelude(state, get(base + "&signature_expiration=0100"), FileOp::read, 99)));
  CHECK(message_of(files_prelude(state, get(base + "&signature_expiration=100"), FileOp::read, 101)) ==
        json(401, "signature is already expired"));
  CHECK(message_of(files_prelude(state, get(base + "&signature_expiration=101"), FileOp::read, 0)) ==
        json(401, "invalid signature"));
  CHECK(message_of(files_prelude(state, get(base), FileOp::read, 0)) == json(401, "invalid signature"));
}

TEST_CASE("resolve_files_path: empty → default workdir, else home") {
  SandboxState state;
  User u;
  u.name = "root";
  u.home = "/root";
  CHECK(resolve_files_path(state, u, "").path == "/root");
  CHECK(resolve_files_path(state, u, "a/../b").path == "/root/b");
  CHECK(resolve_files_path(state, u, "/a/../b").path == "/a/../b");
  CHECK_FALSE(resolve_files_path(state, u, "~bob/x").error.empty());
  state.default_workdir = "/work";
  CHECK(resolve_files_path(state, u, "").path == "/work");
  CHECK(resolve_files_path(state, u, "x").path == "/root/x");
}

TEST_CASE("unix_seconds_now: the precise realtime clock's seconds (signature expiry is exact)") {
  // time(2) reads the coarse clock, which may still show the previous second for a tick after a
  // boundary: a URL expiring then would pass for those milliseconds.
  for (int i = 0; i < 1000; ++i) {
    timespec before{}, after{};
    ::clock_gettime(CLOCK_REALTIME, &before);
    auto now = envd::fs::unix_seconds_now();
    ::clock_gettime(CLOCK_REALTIME, &after);
    CHECK(now >= before.tv_sec);
    CHECK(now <= after.tv_sec);
  }
}
