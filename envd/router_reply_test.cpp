#include <doctest/doctest.h>

#include "envd/error_reply.h"
#include "envd/http/exchange.h"

namespace {
std::string header(const envd::Reply& r, std::string_view name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "<none>";
}
}  // namespace

TEST_CASE("json_error_reply: the bytes and headers of the reference envd's jsonError") {
  // Reference: GET /files?path=/nonexistent → 404, Content-Type: application/json; charset=utf-8,
  // X-Content-Type-Options: nosniff, body below (a newline at the end; & escaped as Go does).
  auto r = envd::json_error_reply(404, "path '/nonexistent' does not exist");
  CHECK(r.status == 404);
  CHECK(r.body == "{\"code\":404,\"message\":\"path '/nonexistent' does not exist\"}\n");
  CHECK(header(r, "content-type") == "application/json; charset=utf-8");
  CHECK(header(r, "x-content-type-options") == "nosniff");
  CHECK(envd::json_error_reply(404, "path '/tmp/my file+1%20&x=y.txt' does not exist").body ==
        "{\"code\":404,\"message\":\"path '/tmp/my file+1%20\\u0026x=y.txt' does not exist\"}\n");
}

TEST_CASE("text_error_reply: Go's http.Error") {
  // Reference: `?path=a&path=b` → 400 text/plain, Content-Length 85.
  auto r = envd::text_error_reply(
      400, "Invalid format for parameter path: multiple values for single value parameter 'path'");
  CHECK(r.status == 400);
  CHECK(r.body.size() == 85);
  CHECK(r.body.back() == '\n');
  CHECK(header(r, "content-type") == "text/plain; charset=utf-8");
  CHECK(header(r, "x-content-type-options") == "nosniff");
  CHECK(envd::text_error_reply(416, "invalid range: failed to overlap").body.size() == 33);  // reference
}
