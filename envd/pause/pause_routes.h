#pragma once
// The pause and resume hooks the orchestrator calls around a snapshot (contract §6.8, internal
// routes: the access token is required once set, as for every route but /health, /files, /init):
//   POST /freeze    freeze the workload's cgroups (mode, maxCgroups); with maxWaitMs > 0 wait
//                   for them to report frozen and answer 200 FreezeResult, else 204; 503 while
//                   another /freeze holds the lock
//   POST /unfreeze  thaw them (204; 500 with the errors)
//   POST /fsfreeze  FIFREEZE the filesystem of --fsfreeze-path (204 only after a real freeze; the
//                   error otherwise: tmpfs/overlayfs cannot freeze; 503 if busy or not configured)
//   POST /fsthaw    FITHAW it (204), before anything is logged; never cancelled
//   POST /collapse  MADV_COLLAPSE of envd's heap (200 CollapseResult); the trim ticks stop until
//                   the next /init (or /unfreeze, or the watchdog): a malloc_trim would split the
//                   huge pages again before the snapshot
// and the thaw that every authorised POST /init does (§6.4: the filesystem first, then the
// cgroups), plus the thaw watchdog (§4.13): a freeze (cgroups or filesystem) not followed by a
// thaw within --thaw-watchdog-ms is undone. While the filesystem is frozen, new uploads and
// filesystem-changing RPCs are refused 503 "filesystem frozen" (write_gate) instead of parking
// pool threads on it.
// Thaws run to completion (a client going away never stops one) and never wait on the blocking
// pool: cgroupfs writes do not block.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "envd/pause/cgroup_freeze.h"
#include "envd/router.h"

namespace envd::pause {

struct PauseOptions {
  bool cgroups = true;                               // false with -no-cgroups: nothing to freeze
  std::string cgroup_root = "/sys/fs/cgroup";        // -cgroup-root (resolved as the process service does)
  std::chrono::milliseconds thaw_watchdog{600'000};  // --thaw-watchdog-ms; 0: never
  std::size_t max_cgroups = 8192;                    // default bound of a hierarchy walk (maxCgroups)
  unsigned collapse_min_resident_pct = 50;           // --collapse-min-resident-pct
  std::optional<std::string> fsfreeze_path;          // --fsfreeze-path; nullopt: /fsfreeze answers 503
};

class PauseController {
 public:
  PauseController(boost::asio::any_io_executor ex, PauseOptions options);
  // With the cgroup tree given as is (unit tests: a fake tree in a temporary directory).
  PauseController(boost::asio::any_io_executor ex, PauseOptions options, CgroupFreezer::Config tree);
  PauseController(const PauseController&) = delete;
  PauseController& operator=(const PauseController&) = delete;

  void register_routes(Router& router);

  // For POST /init once the caller is authorised: audits the frozen cgroups when a freeze was in
  // effect (the X-Envd-Freeze-Audit value, else nullopt) and thaws. Never blocks.
  std::optional<std::string> thaw_for_init(std::string_view request_id);

  // At shutdown (SIGTERM/SIGINT): thaws what this envd froze, filesystem first. A restarted envd
  // would not know about it, and a frozen root would stop the restart itself.
  void thaw_at_shutdown();

  // True from a /collapse until the next /init, /unfreeze or watchdog thaw: the periodic
  // malloc_trim and page release skip their tick (main.cpp).
  bool trim_suspended() const { return trim_suspended_; }

  // A router middleware step: while the filesystem is frozen, refuses requests that would write
  // to it (POST /files, /files/compose, the filesystem RPCs MakeDir, Move, Remove) with 503.
  std::optional<Reply> write_gate(const http::RequestHead& req) const;
  bool fs_frozen() const { return frozen_fd_ >= 0; }

 private:
  boost::asio::awaitable<void> handle_freeze(http::Exchange& ex);
  boost::asio::awaitable<void> handle_unfreeze(http::Exchange& ex);
  boost::asio::awaitable<void> handle_collapse(http::Exchange& ex);
  boost::asio::awaitable<void> handle_fsfreeze(http::Exchange& ex);
  boost::asio::awaitable<void> handle_fsthaw(http::Exchange& ex);
  ThawResult thaw_cgroups(std::string_view why, std::string_view request_id);
  // FITHAW (never blocks, logs only after it); 0 or errno. Not frozen by us and not frozen at all:
  // 0.
  int thaw_fs(std::string_view why, std::string_view request_id);
  void arm_watchdog();
  void disarm_watchdog_if_idle();

  boost::asio::any_io_executor ex_;
  PauseOptions options_;
  CgroupFreezer freezer_;
  boost::asio::steady_timer watchdog_;
  bool trim_suspended_ = false;
  bool collapse_busy_ = false;
  bool freeze_busy_ = false;           // a /freeze is running (its wait included): the lock
  bool fsfreeze_busy_ = false;         // a FIFREEZE is running on the pool
  int frozen_fd_ = -1;                 // the filesystem we froze, until FITHAW
  std::uint64_t thaw_generation_ = 0;  // bumped by every thaw: a waiting /freeze stops waiting
};

}  // namespace envd::pause
