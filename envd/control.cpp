#include "envd/control.h"

#include <string.h>
#include <time.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "envd/flags.h"
#include "envd/init.h"
#include "envd/json_util.h"
#include "envd/log.h"

namespace envd {

namespace asio = boost::asio;

namespace {

http::Headers init_headers() { return {{"cache-control", "no-store"}, {"x-envd-version", kVersion}}; }

void maybe_set_clock(std::int64_t timestamp_ns) {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  std::int64_t local_ns = static_cast<std::int64_t>(now.tv_sec) * 1'000'000'000 + now.tv_nsec;
  if (!clock_needs_setting(local_ns, timestamp_ns)) return;
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timestamp_ns / 1'000'000'000);
  ts.tv_nsec = static_cast<long>(timestamp_ns % 1'000'000'000);
  if (::clock_settime(CLOCK_REALTIME, &ts) != 0) {
    log::warn("init", std::string("cannot set the system clock: ") + std::strerror(errno));
  } else {
    log::write(log::Level::info, "init", "system clock set from the /init timestamp",
               {{"skew_ms", static_cast<std::int64_t>((timestamp_ns - local_ns) / 1'000'000)}});
  }
}

asio::awaitable<void> handle_init(http::Exchange& ex, SandboxState& state, const ControlOptions& options) {
  std::string body;
  auto r = co_await http::read_whole_body(ex, body, options.max_init_body_bytes);
  if (r == http::BodyRead::error) co_return;  // client gone
  if (r == http::BodyRead::too_large) {
    http::Headers h = init_headers();
    co_await ex.respond(413, std::move(h), {});
    co_return;
  }
  // Bounded work before the token check: a streaming pass validates the JSON and its depth, a
  // second one the field types and the token; nothing is built from the body until the caller is
  // known to be allowed (unknown members are never built at all).
  const log::Field rid("request_id", ex.request_id());
  auto refuse = [&](std::string why) -> std::optional<http::Headers> {
    ::explicit_bzero(body.data(), body.size());  // the body may hold the token (envd wipes it too)
    log::write(log::Level::warn, "init", "invalid /init body: " + why, {rid});
    return init_headers();
  };
  std::string why;
  switch (check_init_json(body, options.max_init_depth)) {
    case InitCheck::ok: break;
    case InitCheck::invalid: {
      auto h = refuse("invalid JSON");
      co_await ex.respond(400, std::move(*h), {});
      co_return;
    }
    case InitCheck::too_deep: {
      std::string text = "JSON nested deeper than " + std::to_string(options.max_init_depth) + " levels";
      auto h = refuse(text);
      h->emplace_back("content-type", "text/plain; charset=utf-8");
      h->emplace_back("x-content-type-options", "nosniff");
      co_await ex.respond(400, std::move(*h), "request body: " + text + "\n");
      co_return;
    }
  }
  auto checked = check_init_request(body, &why);
  if (!checked) {
    auto h = refuse(why);
    co_await ex.respond(400, std::move(*h), {});
    co_return;
  }
  // Everything from here to the response is synchronous on the one loop thread, so two /init
  // requests never interleave (envd's initLock).
  InitAuth auth = validate_init_token(state.access_token, checked->access_token, ex.request().header("x-access-token"));
  if (auth != InitAuth::ok) {
    ::explicit_bzero(body.data(), body.size());
    std::string message(init_auth_message(auth));
    log::write(log::Level::warn, "init", "/init refused: " + message, {rid});
    http::Headers h = init_headers();
    // As the reference writes it: the text alone (no newline, no nosniff: not http.Error).
    h.emplace_back("content-type", "text/plain; charset=utf-8");
    co_await ex.respond(401, std::move(h), std::move(message));
    co_return;
  }
  // §6.4 step 4: the workload is thawed by every authorised /init, whatever follows.
  std::optional<std::string> freeze_audit;
  if (options.on_authorized) freeze_audit = options.on_authorized(ex.request_id());
  auto req = decode_init_request(body, &why);
  ::explicit_bzero(body.data(), body.size());
  if (!req) {  // not expected: the check above walked the same body
    log::write(log::Level::warn, "init", "invalid /init body: " + why, {rid});
    http::Headers h = init_headers();
    co_await ex.respond(400, std::move(h), {});
    co_return;
  }
  if (req->timestamp_ns && options.owns_clock) maybe_set_clock(*req->timestamp_ns);
  bool token_change = req->access_token != state.access_token;
  auto outcome = apply_init(state, std::move(*req));
  state.initialized = true;
  if (!outcome.applied) {
    log::write(log::Level::info, "init", "/init with an older timestamp than the last one applied: skipped", {rid});
  } else {
    std::string fields;
    for (const auto& f : outcome.ignored) fields += (fields.empty() ? "" : ", ") + f;
    if (!fields.empty()) {
      log::write(log::Level::info, "init", "/init fields ignored (they need the E2B infrastructure): " + fields, {rid});
    }
    if (token_change) {
      log::write(log::Level::info, "init", state.access_token ? "access token set" : "access token cleared", {rid});
    }
  }
  http::Headers h = init_headers();
  if (freeze_audit) h.emplace_back("x-envd-freeze-audit", std::move(*freeze_audit));
  co_await ex.respond(204, std::move(h), {});
}

asio::awaitable<void> handle_metrics(http::Exchange& ex, MetricsSampler& metrics) {
  std::string body;
  if (wants_history(ex.request().query)) {
    body = "[";
    for (const auto& m : metrics.history()) {
      if (body.size() > 1) body += ',';
      body += metrics_json(m);
    }
    body += "]\n";
  } else {
    auto m = metrics.current();
    if (!m) {
      log::error("metrics", "cannot collect metrics");
      http::Headers h;
      co_await ex.respond(500, std::move(h), {});
      co_return;
    }
    body = metrics_json(*m) + "\n";
  }
  http::Headers h{{"cache-control", "no-store"}, {"content-type", "application/json"}};
  co_await ex.respond(200, std::move(h), std::move(body));
}

}  // namespace

std::string envs_json(const SandboxState& state) {
  std::string out = "{";
  for (const auto& [k, v] : state.global_env()) {
    if (out.size() > 1) out += ',';
    append_go_json_string(out, k);
    out += ':';
    append_go_json_string(out, v);
  }
  out += "}\n";
  return out;
}

bool wants_history(std::string_view query) {
  while (!query.empty()) {
    std::size_t amp = query.find('&');
    std::string_view param = query.substr(0, amp);
    query.remove_prefix(amp == std::string_view::npos ? query.size() : amp + 1);
    if (param == "history=1" || param == "history=true") return true;
  }
  return false;
}

void register_control_routes(Router& router, SandboxState& state, MetricsSampler& metrics, ControlOptions options) {
  router.add("GET", "/health", [](http::Exchange& ex) -> asio::awaitable<void> {
    http::Headers h{{"cache-control", "no-store"}};
    co_await ex.respond(204, std::move(h), {});
  });
  router.add("GET", "/envs", [&state](http::Exchange& ex) -> asio::awaitable<void> {
    http::Headers h{{"cache-control", "no-store"}, {"content-type", "application/json"}};
    co_await ex.respond(200, std::move(h), envs_json(state));
  });
  // Runs to completion: /init is short, and it will thaw a frozen filesystem (operations issue),
  // which must never stop half-way because the client went away.
  router.add(
      "POST", "/init", [&state, options](http::Exchange& ex) { return handle_init(ex, state, options); },
      RouteOptions{.run_to_completion = true});
  router.add("GET", "/metrics", [&metrics](http::Exchange& ex) { return handle_metrics(ex, metrics); });
}

}  // namespace envd
