#include "fs/files_common.h"

#include <ctime>

#include "envd/error_reply.h"
#include "envd/paths.h"
#include "envd/rest/query.h"
#include "envd/rest/signature.h"

namespace envd::fs {

std::int64_t unix_seconds_now() {
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::int64_t>(ts.tv_sec);
}

Reply json_error(int status, std::string_view message) { return json_error_reply(status, message); }

namespace {

// Go's http.Error: the binding failures of envd's generated wrapper.
Reply plain_error(int status, std::string_view message) { return text_error_reply(status, message); }

std::string_view op_name(FileOp op) { return op == FileOp::read ? "read" : "write"; }

}  // namespace

std::variant<FilesRequest, Reply> files_prelude(const SandboxState& state, const http::RequestHead& req, FileOp op,
                                                std::int64_t now_unix) {
  // 1. Binding, in the order of envd's OpenAPI parameters.
  auto query = rest::Query::parse(req.query);
  auto path = rest::single_value(query, "path");
  if (!path.error.empty()) return plain_error(400, std::move(path.error));
  auto username = rest::single_value(query, "username");
  if (!username.error.empty()) return plain_error(400, std::move(username.error));
  auto signature = rest::single_value(query, "signature");
  if (!signature.error.empty()) return plain_error(400, std::move(signature.error));
  auto expiration = rest::single_int64(query, "signature_expiration");
  if (!expiration.error.empty()) return plain_error(400, std::move(expiration.error));

  // 2. Signing (§2.2).
  rest::SigningRequest sreq;
  sreq.operation = op_name(op);
  sreq.header = req.header("x-access-token");
  if (signature.value) sreq.signature = *signature.value;
  sreq.path = path.value ? std::string_view(*path.value) : std::string_view();
  sreq.username = username.value ? std::string_view(*username.value) : std::string_view();
  sreq.expiration = expiration.value;
  if (auto verdict = rest::validate_signing(state.access_token, sreq, now_unix); verdict != rest::Signing::ok) {
    return json_error(401, rest::signing_message(verdict));
  }

  // 3. User (§2.3): a `username` given (even empty) is looked up; absent → the default user.
  std::string name;
  if (username.value) {
    name = *username.value;
  } else {
    if (state.default_user.empty()) return json_error(400, "username not provided");
    name = state.default_user;
  }
  auto user = state.users.lookup(name);
  if (!user) return json_error(401, "error looking up user '" + name + "': user: unknown user " + name);

  FilesRequest out;
  out.path = std::move(path.value);
  out.username = std::move(username.value);
  out.user = std::move(*user);
  return out;
}

FilesPath resolve_files_path(const SandboxState& state, const User& user, std::string_view raw) {
  auto r = expand_and_resolve(raw, user, state.default_workdir);
  if (!r.ok()) return {{}, std::move(r.error)};
  if (r.path.empty()) r.path = user.home;
  return {std::move(r.path), {}};
}

boost::asio::awaitable<void> send_reply(http::Exchange& ex, Reply reply) {
  co_await ex.respond(reply.status, std::move(reply.headers), std::move(reply.body));
}

}  // namespace envd::fs
