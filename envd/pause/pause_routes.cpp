#include "envd/pause/pause_routes.h"

#include <algorithm>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <cstring>

#include "envd/blocking.h"
#include "envd/error_reply.h"
#include "envd/log.h"
#include "envd/pause/collapse.h"
#include "envd/pause/fsfreeze.h"
#include "envd/rest/query.h"
#include "envd/text_file.h"
#include "process/cgroups.h"

namespace envd::pause {

namespace asio = boost::asio;

namespace {

CgroupFreezer::Config freezer_config(const PauseOptions& o) {
  CgroupFreezer::Config c;
  if (!o.cgroups) return c;
  c.root = resolve_cgroup_root(o.cgroup_root);
  if (c.root.empty()) return c;
  c.envd_cgroup =
      relative_self_cgroup(read_file("/proc/self/cgroup").value_or(""), process::find_cgroup2_mount(), c.root);
  return c;
}

http::Headers no_store() { return {{"cache-control", "no-store"}}; }

asio::awaitable<void> reply(http::Exchange& ex, Reply r) {
  r.headers.emplace_back("cache-control", "no-store");
  co_await ex.respond(r.status, std::move(r.headers), std::move(r.body));
}

}  // namespace

PauseController::PauseController(asio::any_io_executor ex, PauseOptions options, CgroupFreezer::Config tree)
    : ex_(ex), options_(std::move(options)), freezer_(std::move(tree)), watchdog_(ex) {}

PauseController::PauseController(asio::any_io_executor ex, PauseOptions options)
    : ex_(ex), options_(std::move(options)), freezer_(freezer_config(options_)), watchdog_(ex) {
  if (!options_.cgroups) return;
  if (!freezer_.enabled()) {
    log::info("pause", "no cgroup v2 hierarchy: /freeze has nothing to freeze");
  }
}

void PauseController::register_routes(Router& router) {
  router.add("POST", "/freeze", [this](http::Exchange& ex) { return handle_freeze(ex); });
  // A thaw must never stop half-way because the orchestrator's connection went away.
  router.add(
      "POST", "/unfreeze", [this](http::Exchange& ex) { return handle_unfreeze(ex); },
      RouteOptions{.run_to_completion = true});
  router.add("POST", "/collapse", [this](http::Exchange& ex) { return handle_collapse(ex); });
  // Never cancelled: a FIFREEZE whose result nobody keeps would leave the filesystem frozen with no
  // descriptor to thaw it; a thaw must not stop half-way.
  router.add(
      "POST", "/fsfreeze", [this](http::Exchange& ex) { return handle_fsfreeze(ex); },
      RouteOptions{.run_to_completion = true});
  router.add(
      "POST", "/fsthaw", [this](http::Exchange& ex) { return handle_fsthaw(ex); },
      RouteOptions{.run_to_completion = true});
}

asio::awaitable<void> PauseController::handle_collapse(http::Exchange& ex) {
  if (collapse_busy_) {
    co_await reply(ex, text_error_reply(503, "another collapse is in progress"));
    co_return;
  }
  collapse_busy_ = true;
  struct Unlock {
    bool& busy;
    ~Unlock() { busy = false; }
  } unlock{collapse_busy_};
  // From here to the next /init the heap must stay as collapsed: no trim tick in between.
  trim_suspended_ = true;
  const unsigned pct = options_.collapse_min_resident_pct;
  auto job = [pct] { return collapse_heap(pct); };  // synchronous madvise calls: on the pool
  CollapseResult r = co_await run_blocking(WorkClass::walk, job);
  log::write(log::Level::info, "pause", "heap collapsed into huge pages",
             {{"request_id", ex.request_id()},
              {"regions", r.regions},
              {"chunks", r.chunks},
              {"collapsed", r.collapsed},
              {"already_huge", r.already_huge},
              {"skipped", r.skipped},
              {"last_error", r.last_error ? std::strerror(r.last_error) : ""},
              {"elapsed_ms", r.elapsed_ms}});
  http::Headers h = no_store();
  h.emplace_back("content-type", "application/json");
  co_await ex.respond(200, std::move(h), r.json() + "\n");
}

asio::awaitable<void> PauseController::handle_freeze(http::Exchange& ex) {
  auto q = rest::Query::parse(ex.request().query);
  auto wait = rest::single_int64(q, "maxWaitMs");
  auto max = rest::single_int64(q, "maxCgroups");
  auto mode = rest::single_value(q, "mode");
  for (const std::string* err : {&wait.error, &max.error, &mode.error}) {
    if (!err->empty()) {
      co_await reply(ex, text_error_reply(400, *err));
      co_return;
    }
  }
  if (freeze_busy_) {
    co_await reply(ex, text_error_reply(503, "another freeze is in progress"));
    co_return;
  }
  freeze_busy_ = true;
  struct Unlock {
    bool& busy;
    ~Unlock() { busy = false; }
  } unlock{freeze_busy_};

  const FreezeMode m = parse_mode(mode.value.value_or(""));
  const std::size_t max_cgroups =
      max.value && *max.value > 0 ? static_cast<std::size_t>(*max.value) : options_.max_cgroups;
  // cgroupfs is a kernel pseudo-filesystem (a filesystem freeze does not stop it) and the walk is
  // bounded by maxCgroups: done on the loop, so a thaw can never interleave with it.
  FreezeResult r = freezer_.freeze(m, max_cgroups);
  arm_watchdog();
  const log::Field rid("request_id", ex.request_id());
  log::write(log::Level::info, "pause", "cgroups frozen",
             {rid,
              {"mode", mode_name(m)},
              {"requested", r.requested},
              {"failed", r.failed},
              {"pre_frozen", r.pre_frozen},
              {"truncated", r.truncated ? "true" : "false"}});

  if (!wait.value || *wait.value <= 0) {
    co_await ex.respond(204, no_store(), {});
    co_return;
  }
  // Wait for `frozen 1` in every requested cgroup's cgroup.events (polled: 1 ms doubling to
  // 32 ms), until maxWaitMs, or until a thaw makes waiting pointless.
  const auto start = std::chrono::steady_clock::now();
  // At most an hour (a larger maxWaitMs would overflow the clock arithmetic; the watchdog thaws
  // after 10 minutes anyway).
  const auto deadline = start + std::chrono::milliseconds(std::min<std::int64_t>(*wait.value, 3'600'000));
  const std::uint64_t generation = thaw_generation_;
  asio::steady_timer timer(ex_);
  std::chrono::milliseconds step{1};
  CgroupFreezer::Progress p;
  for (;;) {
    if (thaw_generation_ != generation) break;  // thawed meanwhile: report what the last look saw
    p = freezer_.observe();
    if (p.not_frozen == 0) break;  // the unobservable ones cannot be waited for
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) break;
    timer.expires_after(std::min<std::chrono::steady_clock::duration>(step, deadline - now));
    co_await timer.async_wait(asio::use_awaitable);
    step = std::min(step * 2, std::chrono::milliseconds(32));
  }
  r.not_frozen = p.not_frozen;
  r.unobservable = p.unobservable;
  r.wait_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  if (r.not_frozen > 0) {
    log::write(log::Level::warn, "pause", "freeze did not stop the whole workload within maxWaitMs",
               {rid, {"not_frozen", r.not_frozen}, {"unobservable", r.unobservable}, {"wait_ms", r.wait_ms}});
  }
  http::Headers h = no_store();
  h.emplace_back("content-type", "application/json");
  co_await ex.respond(200, std::move(h), r.json() + "\n");
}

asio::awaitable<void> PauseController::handle_unfreeze(http::Exchange& ex) {
  ThawResult r = thaw_cgroups("/unfreeze", ex.request_id());
  if (!r.errors.empty()) {
    std::string text = "unfreeze failed:";
    for (const auto& e : r.errors) text += " " + e + ";";
    text.pop_back();
    co_await reply(ex, text_error_reply(500, text));
    co_return;
  }
  co_await ex.respond(204, no_store(), {});
}

std::optional<std::string> PauseController::thaw_for_init(std::string_view request_id) {
  thaw_fs("/init", request_id);  // first: nothing below may write to a frozen filesystem
  std::optional<std::string> audit;
  if (freezer_.freeze_in_effect()) audit = freezer_.audit(options_.max_cgroups).json();
  thaw_cgroups("/init", request_id);
  return audit;
}

void PauseController::thaw_at_shutdown() {
  if (frozen_fd_ >= 0) thaw_fs("shutdown", "");
  if (freezer_.freeze_in_effect()) thaw_cgroups("shutdown", "");
}

ThawResult PauseController::thaw_cgroups(std::string_view why, std::string_view request_id) {
  ++thaw_generation_;
  if (trim_suspended_) log::write(log::Level::info, "pause", "trim ticks resumed", {{"by", why}});
  trim_suspended_ = false;  // resumed: the trim ticks may run again
  bool was_frozen = freezer_.freeze_in_effect();
  ThawResult r = freezer_.thaw();
  disarm_watchdog_if_idle();
  if (!r.errors.empty()) {
    std::string text;
    for (const auto& e : r.errors) text += (text.empty() ? "" : "; ") + e;
    log::write(log::Level::error, "pause", "thaw failed", {{"by", why}, {"request_id", request_id}, {"errors", text}});
  } else if (was_frozen) {
    log::write(log::Level::info, "pause", "cgroups thawed",
               {{"by", why}, {"request_id", request_id}, {"thawed", r.thawed}});
  }
  return r;
}

void PauseController::arm_watchdog() {
  if (options_.thaw_watchdog.count() <= 0) return;
  watchdog_.expires_after(options_.thaw_watchdog);
  watchdog_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) return;           // cancelled by a thaw or a newer freeze
    thaw_fs("watchdog", "");  // FITHAW before any log line
    log::write(log::Level::warn, "pause", "thaw watchdog: no thaw and no /init since the freeze; thawing",
               {{"after_ms", static_cast<std::int64_t>(options_.thaw_watchdog.count())}});
    thaw_cgroups("watchdog", "");
  });
}

void PauseController::disarm_watchdog_if_idle() {
  if (!freezer_.freeze_in_effect() && frozen_fd_ < 0 && !fsfreeze_busy_) watchdog_.cancel();
}

std::optional<Reply> PauseController::write_gate(const http::RequestHead& req) const {
  if (frozen_fd_ < 0 || req.method != "POST") return std::nullopt;
  static constexpr std::string_view kWrites[] = {"/files", "/files/compose", "/filesystem.Filesystem/MakeDir",
                                                 "/filesystem.Filesystem/Move", "/filesystem.Filesystem/Remove"};
  for (auto p : kWrites) {
    if (req.path == p) return json_error_reply(503, "filesystem frozen");
  }
  return std::nullopt;
}

asio::awaitable<void> PauseController::handle_fsfreeze(http::Exchange& ex) {
  if (!options_.fsfreeze_path) {
    co_await reply(ex, json_error_reply(503, "no fsfreeze path configured"));
    co_return;
  }
  if (fsfreeze_busy_ || frozen_fd_ >= 0) {
    co_await reply(ex, json_error_reply(503, fsfreeze_busy_ ? "a filesystem freeze is in progress"
                                                            : "the filesystem is already frozen"));
    co_return;
  }
  fsfreeze_busy_ = true;
  // The watchdog covers the freeze from its start: a FIFREEZE that ends after its client gave up
  // is still thawed in time.
  arm_watchdog();
  const std::string path = *options_.fsfreeze_path;
  auto job = [path] { return freeze_path(path); };  // FIFREEZE syncs the filesystem first: slow
  FsFreezeOutcome r = co_await run_blocking(WorkClass::meta, job);
  fsfreeze_busy_ = false;
  const log::Field rid("request_id", ex.request_id());
  if (r.fd < 0) {
    disarm_watchdog_if_idle();
    std::string text = fs_error_text(r.step, path, r.error);
    log::write(log::Level::warn, "pause", "filesystem freeze failed: " + text, {rid});
    co_await reply(ex, json_error_reply(r.error == EBUSY ? 503 : 500, text));
    co_return;
  }
  frozen_fd_ = r.fd;
  // Queued, not written: the log may be on the filesystem just frozen (envd/log.h).
  log::write(log::Level::info, "pause", "filesystem frozen", {rid, {"path", path}});
  co_await ex.respond(204, no_store(), {});
}

asio::awaitable<void> PauseController::handle_fsthaw(http::Exchange& ex) {
  if (!options_.fsfreeze_path) {
    co_await reply(ex, json_error_reply(503, "no fsfreeze path configured"));
    co_return;
  }
  if (fsfreeze_busy_) {
    // The FIFREEZE on the pool cannot be interrupted; the orchestrator retries (the watchdog
    // covers the case where it does not).
    co_await reply(ex, json_error_reply(503, "a filesystem freeze is in progress"));
    co_return;
  }
  int err = thaw_fs("/fsthaw", ex.request_id());
  if (err != 0) {
    co_await reply(ex, json_error_reply(500, fs_error_text("FITHAW", *options_.fsfreeze_path, err)));
    co_return;
  }
  co_await ex.respond(204, no_store(), {});
}

int PauseController::thaw_fs(std::string_view why, std::string_view request_id) {
  if (!options_.fsfreeze_path) return 0;
  const bool ours = frozen_fd_ >= 0;
  // FITHAW first, on the loop: it never waits, and nothing before it may write to the filesystem.
  int err = ours ? thaw_fd(frozen_fd_) : thaw_path(*options_.fsfreeze_path);
  frozen_fd_ = -1;
  disarm_watchdog_if_idle();
  if (err == EINVAL) err = 0;  // was not frozen (or already thawed by someone else)
  if (err != 0) {
    log::write(log::Level::error, "pause",
               "filesystem thaw failed: " + fs_error_text("FITHAW", *options_.fsfreeze_path, err),
               {{"by", why}, {"request_id", request_id}});
  } else if (ours) {
    log::write(log::Level::info, "pause", "filesystem thawed", {{"by", why}, {"request_id", request_id}});
  }
  return err;
}

}  // namespace envd::pause
