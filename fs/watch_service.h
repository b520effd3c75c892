#pragma once
// filesystem.Filesystem WatchDir, CreateWatcher, GetWatcherEvents, RemoveWatcher (contract §5.7,
// §5.8, issue 9) on one daemon-wide inotify hub (fs/inotify_hub.h).
#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <cstddef>

#include "envd/rpc/service.h"
#include "envd/sandbox_state.h"

namespace envd::fs {

struct WatchConfig {
  std::size_t max_inotify_watches = 0;      // 0: half of fs.inotify.max_user_watches
  std::size_t stream_queue_events = 65536;  // WatchDir: events queued for a slow client
  std::size_t stream_queue_bytes = 16u << 20;
  std::size_t poll_queue_events = 10000;  // CreateWatcher: events kept between two polls
  std::size_t poll_queue_bytes = 4u << 20;
  std::size_t max_poll_watchers = 1000;                             // more: the least recently polled one is evicted
  std::chrono::milliseconds poll_idle_timeout{24ll * 3600 * 1000};  // CLOCK_MONOTONIC
};

// statfs f_type magics refused without allow_network_mounts (contract §5.7): NFS, CIFS, SMB, SMB2
// and FUSE.
bool is_network_filesystem(unsigned long f_type);

// Replaces the `unimplemented` watch methods that register_service() left.
void register_watch_service(rpc::Registry& registry, SandboxState& state, const boost::asio::any_io_executor& ex,
                            const WatchConfig& config);

}  // namespace envd::fs
