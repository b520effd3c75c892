#pragma once
// Command-line flags, compatible with envd's Go `flag` parsing: `-name`, `--name`, `-name=value`,
// `-name value`; boolean flags take an optional `=true|false`.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace envd {

inline constexpr const char* kVersion = "0.6.6";

struct Flags {
  std::uint16_t port = 49983;
  bool version = false;
  bool commit = false;
  bool help = false;
  bool verbose = false;
  bool is_not_fc = false;
  bool no_cgroups = false;
  std::string cgroup_root = "/sys/fs/cgroup";
  std::string log_level = "info";
  bool test_services = false;
  std::chrono::milliseconds idle_timeout{640'000};
  std::size_t max_message_bytes = 32u << 20;
  std::size_t max_header_bytes = 1u << 20;
  // --- transport bounds (issue 7) ---
  std::chrono::milliseconds read_timeout{60'000};    // a request head whole / a body read's progress window
  std::size_t read_min_progress_bytes = 1024;        // body bytes per read-timeout window that re-arm it
  std::size_t max_header_count = 256;                // header fields per request (HTTP/1.1 and h2)
  std::size_t h2_max_header_list_bytes = 64u << 10;  // decoded header list per h2 request
  std::size_t h2_header_budget_bytes = 4u << 20;     // decoded headers held per h2 connection
  std::uint32_t h2_max_concurrent_streams = 250;
  // --- end transport bounds ---
  std::string default_user = "root";  // until /init defaultUser
  std::string default_workdir;        // until /init defaultWorkdir; empty: the user's home
  std::chrono::milliseconds metrics_interval{2000};
  std::chrono::milliseconds shutdown_timeout{5000};
  std::chrono::milliseconds trim_interval{10000};  // hand freed heap back to the OS this often
  bool owns_clock = false;                         // /init may set the system clock (never with -isnotfc)
  std::size_t blocking_threads = 8;                // cap of the blocking pool (filesystem syscalls)
  std::size_t etag_generations = 4096;             // inodes whose envd-write generation is remembered
  std::size_t gzip_chunk_bytes = 256 * 1024;       // file bytes read and compressed per step of a gzip download
  // --- port forwarding (Operations, contract §7.5) ---
  std::chrono::milliseconds forward_scan{1000};  // how often LISTEN sockets are listed
  std::string forward_address = "169.254.0.21";  // where loopback-only services are exposed; empty: off
  std::vector<std::pair<std::uint16_t, std::uint16_t>> forward_ports;  // inclusive ranges; empty: all
  std::size_t forward_max_connections_per_port = 1024;
  std::size_t forward_max_connections = 4096;
  std::size_t forward_fd_reserve = 256;  // fds below RLIMIT_NOFILE forwarding never takes
  bool forward_thread = true;            // scans and relays on a thread of their own (false: on envd's loop)
  // --- end port forwarding ---

  // --- process service (issue 4) ---
  std::chrono::milliseconds process_retention{30'000};  // Connect serves an ended process this long
  std::chrono::milliseconds subscriber_stall{10'000};   // full-queue time before a stream is dropped
  // --- end process service ---
  // --- output retention (issue 13 part 1) ---
  std::size_t output_retention_max_bytes = 16u << 20;    // per process (StartRequest's size is capped here)
  std::size_t output_retention_total_bytes = 64u << 20;  // all processes together
  std::chrono::milliseconds output_retention{30'000};    // an ended process's ring is kept this long
  std::size_t output_retention_max_ended = 16;           // ended processes whose ring is kept
  // --- end output retention ---

  // --- bounds on RPC and /init input (issue 7) ---
  std::size_t max_init_depth = 32;                // JSON nesting allowed in a POST /init body
  std::size_t library_log_lines_per_minute = 60;  // libprotobuf's log lines let through, a minute
  // --- end bounds on RPC and /init input ---
  // --- uploads (issue 8) ---
  std::chrono::milliseconds upload_idle_timeout{60'000};  // POST /files body silent this long → 408
  // --- end uploads ---
  // --- directory watching (issue 9) ---
  std::size_t max_inotify_watches = 0;     // 0: half of fs.inotify.max_user_watches
  std::size_t watch_queue_events = 65536;  // WatchDir stream queue
  std::size_t watch_queue_bytes = 16u << 20;
  std::size_t watcher_queue_events = 10000;  // CreateWatcher (polling) queue
  std::size_t watcher_queue_bytes = 4u << 20;
  std::size_t max_watchers = 1000;  // polling watchers
  std::chrono::milliseconds watcher_idle_timeout{24ll * 3600 * 1000};
  // --- end directory watching ---
  // --- pause hooks (operations issue) ---
  std::chrono::milliseconds thaw_watchdog{600'000};  // undo a /freeze not thawed within this; 0: never
  std::size_t freeze_max_cgroups = 8192;             // cgroups a hierarchy freeze visits (maxCgroups default)
  unsigned collapse_min_resident_pct = 50;           // /collapse leaves chunks less resident than this
  std::optional<std::string> fsfreeze_path;          // /fsfreeze target; unset: `/`, or none with -isnotfc
  std::size_t log_queue_bytes = 1u << 20;            // log lines held while the log cannot be written
  // --- end pause hooks ---
  // --- bench2 ---
  std::chrono::milliseconds log_gather{0};  // the log thread gathers lines this long per write (0: none)
  // --- end bench2 ---
  // --- access matrix ---
  bool print_routes = false;                      // print the route and RPC method table (JSON) and exit
  std::size_t max_init_body_bytes = 16u << 20;    // POST /init body read whole; larger → 413
  std::size_t max_compose_body_bytes = 1u << 20;  // POST /files/compose body read whole; larger → 413
  // --- end access matrix ---
  // --- directories as archives (issue 13 part 3) ---
  std::uint64_t archive_max_entries = 100'000;    // entries of one uploaded archive; more → 413
  std::uint64_t archive_max_bytes = 16ull << 30;  // file data of one uploaded archive; more → 413
  std::size_t archive_max_name_bytes = 4096;      // an entry's name or link target; longer → 400
  std::size_t archive_max_header_bytes = 65536;   // one pax / GNU long-name record; larger → 413
  std::size_t archive_max_depth = 256;            // directory levels walked (download) or created (upload)
  // --- end directories as archives ---
};

// Returns an error message for unknown flags or bad values.
std::optional<std::string> parse_flags(const std::vector<std::string>& args, Flags& out);
std::string usage();

}  // namespace envd
