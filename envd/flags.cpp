#include "envd/flags.h"

#include <arpa/inet.h>

#include <algorithm>
#include <charconv>
#include <functional>
#include <map>

namespace envd {

namespace {

template <class T>
bool parse_uint(const std::string& s, T& out, unsigned long long max) {
  unsigned long long v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max) return false;
  out = static_cast<T>(v);
  return true;
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "1" || s == "t" || s == "T" || s == "true" || s == "TRUE" || s == "True") return out = true, true;
  if (s == "0" || s == "f" || s == "F" || s == "false" || s == "FALSE" || s == "False") return out = false, true;
  return false;
}

}  // namespace

std::string usage() {
  return "Usage: envd [flags]\n"
         "\n"
         "The sandbox agent: serves process, filesystem and control APIs over HTTP/1.1 and h2c\n"
         "(Connect, gRPC and gRPC-Web) on one port.\n"
         "\n"
         "Flags (one or two dashes; -name=value or -name value):\n"
         "  -port N                 listen port (default 49983; 0 picks a free port)\n"
         "  -version                print the envd API version and exit\n"
         "  -commit                 print the build commit and exit\n"
         "  -isnotfc                not running in a Firecracker VM (no metadata service, no clock setting)\n"
         "  -verbose                log at debug level, to stdout instead of stderr\n"
         "  -cgroup-root PATH       cgroup v2 mount point (default /sys/fs/cgroup)\n"
         "  -no-cgroups             do not place processes in cgroups\n"
         "  --log-level LEVEL       debug, info, warn, error or off (default info)\n"
         "  --idle-timeout-ms N     close idle connections after N ms (default 640000)\n"
         "  --max-message-bytes N   largest RPC request message (default 33554432)\n"
         "  --max-header-bytes N    largest request header block (default 1048576)\n"
         // --- transport bounds (issue 7) ---
         "  --max-header-count N    most header fields in one request, HTTP/1.1 or h2 (default 256)\n"
         "  --read-timeout-ms N     a request head must arrive whole within N ms of its first byte, and\n"
         "                          a request body must deliver --read-min-progress-bytes within every\n"
         "                          N ms spent waiting for it; else the connection closes (default 60000,\n"
         "                          used as the idle timeout when that is shorter)\n"
         "  --read-min-progress-bytes N  body bytes that re-arm --read-timeout-ms (default 1024)\n"
         "  --h2-max-header-list-bytes N largest decoded header list of one h2 request, counted as\n"
         "                          name + value + 32 per field (default 65536; also <= --max-header-bytes)\n"
         "  --h2-header-budget-bytes N   decoded header bytes one h2 connection may hold over its open\n"
         "                          streams; a stream past it is refused (default 4194304)\n"
         "  --h2-max-concurrent-streams N  SETTINGS_MAX_CONCURRENT_STREAMS (default 250)\n"
         // --- end transport bounds ---
         "  --default-user NAME     user for requests that name none, until /init defaultUser (default root)\n"
         "  --default-workdir PATH  working directory for requests that name none, until /init defaultWorkdir\n"
         "                          (default: the user's home)\n"
         "  --metrics-interval-ms N sample CPU, memory and disk every N ms for /metrics (default 2000)\n"
         "  --shutdown-timeout-ms N on SIGTERM/SIGINT, wait at most N ms for open requests (default 5000)\n"
         "  --trim-interval-ms N    return freed heap memory and clean code pages to the OS every N ms\n"
         "                          (default 10000)\n"
         "  --owns-clock            let /init set the system clock from its timestamp (ignored with -isnotfc)\n"
         "  --blocking-threads N    at most N threads for filesystem calls off the event loop (default 8,\n"
         "                          at least 2; each kind of work keeps threads for the others)\n"
         "  --etag-generations N    remember envd's own writes for the ETags of at most N files (default 4096)\n"
         "  --gzip-chunk-bytes N    a gzip download reads and compresses N bytes of the file at a time\n"
         "                          (default 262144, at least 4096)\n"
         "  --test-services         also serve the envdtest.Echo transport test service\n"
         // --- port forwarding (Operations, contract §7.5) ---
         "  --forward-address ADDR    expose TCP services that listen only on loopback (127.0.0.0/8, ::1)\n"
         "                            on ADDR:<same port>, relayed inside envd (default 169.254.0.21, the\n"
         "                            guest's external address; empty: no forwarding). Retried at every\n"
         "                            scan while ADDR is on no interface\n"
         "  --forward-scan-ms N       list listening sockets every N ms (default 1000)\n"
         "  --forward-ports LIST      only these ports, e.g. 3000,8000-8099 (default: all)\n"
         "  --forward-max-connections-per-port N  forwarded connections per port; more wait in the\n"
         "                            backlog (default 1024)\n"
         "  --forward-max-connections N  forwarded connections in total (default 4096)\n"
         "  --forward-fd-reserve N    fds below the open-files limit that forwarding never takes, kept for\n"
         "                            envd's API (default 256)\n"
         "  --forward-thread          scan and relay on a thread of its own (default true; =false: on envd's\n"
         "                            event loop, where a bulk transfer delays the API)\n"
         // --- end port forwarding ---
         // --- process service (issue 4) ---
         "  --process-retention-ms N  Connect serves start+end of an ended process for N ms (default 30000)\n"
         "  --subscriber-stall-ms N   drop a process output stream whose queue stayed full N ms while\n"
         "                            another stream waits (default 10000)\n"
         // --- end process service ---
         // --- output retention (issue 13 part 1) ---
         "  --output-retention-max-bytes N  most output a Start may ask envd to keep for a replay\n"
         "                            (output_retention_bytes is capped here; default 16777216)\n"
         "  --output-retention-total-bytes N  output kept for all processes together; a Start beyond it\n"
         "                            fails with resource_exhausted (default 67108864)\n"
         "  --output-retention-ms N   an ended process's kept output is replayable for N ms (default 30000)\n"
         "  --output-retention-max-ended N  ended processes whose output is kept (default 16)\n"
         // --- end output retention ---
         // --- bounds on RPC and /init input (issue 7) ---
         "  --max-init-depth N      deepest JSON nesting accepted in a POST /init body; deeper → 400\n"
         "                          (default 32)\n"
         "  --library-log-lines-per-minute N  log at most N lines a minute from libprotobuf (e.g. invalid\n"
         "                          UTF-8 in a request); the rest are counted (default 60)\n"
         // --- end bounds on RPC and /init input ---
         // --- uploads (issue 8) ---
         "  --upload-idle-timeout-ms N  end an upload (POST /files) whose body sent no byte for N ms with 408\n"
         "                            (default 60000)\n"
         // --- end uploads ---
         // --- directory watching (issue 9) ---
         "  --max-inotify-watches N   inotify watches envd may hold (default: half of\n"
         "                            fs.inotify.max_user_watches)\n"
         "  --watch-queue-events N    WatchDir: events queued for a slow client before the stream ends\n"
         "                            with data_loss (default 65536)\n"
         "  --watch-queue-bytes N     the same bound in bytes (default 16777216)\n"
         "  --watcher-queue-events N  CreateWatcher: events kept between two GetWatcherEvents before the\n"
         "                            watcher fails with data_loss (default 10000)\n"
         "  --watcher-queue-bytes N   the same bound in bytes (default 4194304)\n"
         "  --max-watchers N          polling watchers; more evict the least recently polled (default 1000)\n"
         "  --watcher-idle-timeout-ms N  evict a polling watcher not polled for N ms of CLOCK_MONOTONIC\n"
         "                            (default 86400000)\n"
         // --- end directory watching ---
         // --- pause hooks (operations issue) ---
         "  --thaw-watchdog-ms N      thaw the cgroups a /freeze froze if no /unfreeze or /init came within\n"
         "                            N ms (default 600000; 0: never)\n"
         "  --freeze-max-cgroups N    cgroups a hierarchy /freeze visits when it names no maxCgroups\n"
         "                            (default 8192)\n"
         "  --collapse-min-resident-pct N  /collapse turns a 2 MiB chunk of envd's heap into a huge page\n"
         "                            only when N % of its pages are resident (default 50)\n"
         "  --fsfreeze-path PATH      the filesystem /fsfreeze freezes and /fsthaw thaws (default /; with\n"
         "                            -isnotfc none unless given: /fsfreeze then answers 503)\n"
         "  --log-queue-bytes N       log lines queued while the log cannot be written (e.g. a frozen\n"
         "                            filesystem); the oldest are dropped, and counted, past N bytes\n"
         "                            (default 1048576)\n"
         // --- end pause hooks ---
         // --- bench2 ---
         "  --log-gather-ms N       once a line is queued, the log thread waits N ms for more before it\n"
         "                          writes (one wake-up and write per N ms under load, not one a\n"
         "                          request; default 0: each line is written at once)\n"
         // --- end bench2 ---
         // --- access matrix ---
         "  --print-routes          print every REST route and RPC method this command line would serve\n"
         "                          (JSON, with the token-exempt ones marked) and exit\n"
         "  --max-init-body-bytes N largest POST /init body; larger → 413 (default 16777216)\n"
         "  --max-compose-body-bytes N  largest POST /files/compose body; larger → 413 (default 1048576)\n"
         // --- end access matrix ---
         // --- directories as archives (issue 13 part 3) ---
         "  --archive-max-entries N   entries one uploaded archive may hold; more → 413 (default 100000)\n"
         "  --archive-max-bytes N     file bytes one uploaded archive may hold; more → 413\n"
         "                            (default 17179869184)\n"
         "  --archive-max-name-bytes N  longest entry name or link target in an archive; longer → 400\n"
         "                            (default 4096)\n"
         "  --archive-max-header-bytes N  largest pax or GNU long-name record in an archive; larger → 413\n"
         "                            (default 65536)\n"
         "  --archive-max-depth N     directory levels an archive download walks (deeper ones are left\n"
         "                            empty, logged) or an upload creates (deeper → 400) (default 256)\n"
         // --- end directories as archives ---
         "  -help                   show this help\n"
         // --- service manager (ops-init) ---
         "\n"
         "Environment (set by systemd for a Type=notify service; envd/notify.h):\n"
         "  NOTIFY_SOCKET           datagram socket (a path, or @name for an abstract one): envd sends\n"
         "                          READY=1 once listening and STOPPING=1 when a shutdown begins\n"
         "  WATCHDOG_USEC           with NOTIFY_SOCKET: WATCHDOG=1 every half of this many microseconds\n"
         "                          from the event loop (not if WATCHDOG_PID names another process)\n"
         "  Processes envd starts never see these variables (their environment is built anew).\n";
  // --- end service manager ---
}

std::optional<std::string> parse_flags(const std::vector<std::string>& args, Flags& out) {
  using Setter = std::function<bool(const std::string&)>;
  std::map<std::string, bool*> bools = {
      {"version", &out.version},
      {"commit", &out.commit},
      {"help", &out.help},
      {"h", &out.help},
      {"verbose", &out.verbose},
      {"isnotfc", &out.is_not_fc},
      {"no-cgroups", &out.no_cgroups},
      {"test-services", &out.test_services},
      {"owns-clock", &out.owns_clock},
      {"print-routes", &out.print_routes},
  };
  constexpr std::uint64_t kHundredDaysMs = 100ull * 24 * 3600 * 1000;  // the cap of the long waits
  auto millis = [](std::chrono::milliseconds& field, std::uint64_t min, std::uint64_t max) {
    return [&field, min, max](const std::string& v) {
      std::uint64_t ms = 0;
      if (!parse_uint(v, ms, max) || ms < min) return false;
      field = std::chrono::milliseconds(ms);
      return true;
    };
  };
  std::map<std::string, Setter> values = {
      {"port", [&](const std::string& v) { return parse_uint(v, out.port, 65535); }},
      {"cgroup-root",
       [&](const std::string& v) {
         out.cgroup_root = v;
         return !v.empty();
       }},
      {"log-level",
       [&](const std::string& v) {
         out.log_level = v;
         return true;
       }},
      {"idle-timeout-ms", millis(out.idle_timeout, 1, kHundredDaysMs)},
      {"max-message-bytes",
       [&](const std::string& v) {
         return parse_uint(v, out.max_message_bytes, 1ull << 32) && out.max_message_bytes > 0;
       }},
      {"default-user",
       [&](const std::string& v) {
         out.default_user = v;
         return !v.empty();
       }},
      {"default-workdir",
       [&](const std::string& v) {
         out.default_workdir = v;
         return true;
       }},
      {"metrics-interval-ms", millis(out.metrics_interval, 10, 3600ull * 1000)},
      {"shutdown-timeout-ms", millis(out.shutdown_timeout, 0, 3600ull * 1000)},
      {"trim-interval-ms", millis(out.trim_interval, 10, 3600ull * 1000)},
      {"gzip-chunk-bytes",
       [&](const std::string& v) {
         return parse_uint(v, out.gzip_chunk_bytes, 64ull << 20) && out.gzip_chunk_bytes >= 4096;
       }},
      {"etag-generations",
       [&](const std::string& v) {
         return parse_uint(v, out.etag_generations, 1u << 24) && out.etag_generations >= 1;
       }},
      {"blocking-threads",
       [&](const std::string& v) { return parse_uint(v, out.blocking_threads, 1024) && out.blocking_threads >= 2; }},
      {"max-header-bytes",
       [&](const std::string& v) {
         return parse_uint(v, out.max_header_bytes, 64ull << 20) && out.max_header_bytes >= 1024;
       }},
  };
  // --- transport bounds (issue 7) ---
  values["read-timeout-ms"] = millis(out.read_timeout, 1, kHundredDaysMs);
  values["read-min-progress-bytes"] = [&](const std::string& v) {
    return parse_uint(v, out.read_min_progress_bytes, 1ull << 30) && out.read_min_progress_bytes > 0;
  };
  values["max-header-count"] = [&](const std::string& v) {
    return parse_uint(v, out.max_header_count, 1ull << 20) && out.max_header_count >= 8;
  };
  values["h2-max-header-list-bytes"] = [&](const std::string& v) {
    return parse_uint(v, out.h2_max_header_list_bytes, 64ull << 20) && out.h2_max_header_list_bytes >= 1024;
  };
  values["h2-header-budget-bytes"] = [&](const std::string& v) {
    return parse_uint(v, out.h2_header_budget_bytes, 1ull << 32) && out.h2_header_budget_bytes >= 1024;
  };
  values["h2-max-concurrent-streams"] = [&](const std::string& v) {
    return parse_uint(v, out.h2_max_concurrent_streams, 100000) && out.h2_max_concurrent_streams > 0;
  };
  // --- end transport bounds ---
  // --- port forwarding (Operations, contract §7.5) ---
  bools["forward-thread"] = &out.forward_thread;
  values["forward-scan-ms"] = millis(out.forward_scan, 1, 3600ull * 1000);
  values["forward-address"] = [&](const std::string& v) {
    unsigned char buf[16];
    if (v.empty()) return out.forward_address = v, true;
    bool v4 = ::inet_pton(AF_INET, v.c_str(), buf) == 1, v6 = !v4 && ::inet_pton(AF_INET6, v.c_str(), buf) == 1;
    if (!v4 && !v6) return false;
    if (std::all_of(buf, buf + (v4 ? 4 : 16), [](unsigned char b) { return b == 0; })) return false;  // wildcard
    out.forward_address = v;
    return true;
  };
  values["forward-ports"] = [&](const std::string& v) {
    out.forward_ports.clear();
    std::size_t start = 0;
    while (start < v.size()) {
      std::size_t end = v.find(',', start);
      std::string item = v.substr(start, end == std::string::npos ? std::string::npos : end - start);
      start = end == std::string::npos ? v.size() : end + 1;
      std::uint16_t lo = 0, hi = 0;
      auto dash = item.find('-');
      if (!parse_uint(item.substr(0, dash), lo, 65535)) return false;
      hi = lo;
      if (dash != std::string::npos && !parse_uint(item.substr(dash + 1), hi, 65535)) return false;
      if (lo == 0 || hi < lo) return false;
      out.forward_ports.emplace_back(lo, hi);
    }
    return true;
  };
  auto forward_count = [](std::size_t& field, std::uint64_t min) {
    return [&field, min](const std::string& v) { return parse_uint(v, field, 1ull << 24) && field >= min; };
  };
  values["forward-max-connections-per-port"] = forward_count(out.forward_max_connections_per_port, 1);
  values["forward-max-connections"] = forward_count(out.forward_max_connections, 1);
  values["forward-fd-reserve"] = forward_count(out.forward_fd_reserve, 0);
  // --- end port forwarding ---
  // --- access matrix ---
  values["max-init-body-bytes"] = [&](const std::string& v) {
    return parse_uint(v, out.max_init_body_bytes, 1ull << 30) && out.max_init_body_bytes >= 1024;
  };
  values["max-compose-body-bytes"] = [&](const std::string& v) {
    return parse_uint(v, out.max_compose_body_bytes, 1ull << 30) && out.max_compose_body_bytes >= 1024;
  };
  // --- end access matrix ---
  // --- process service (issue 4) ---
  values["process-retention-ms"] = millis(out.process_retention, 0, kHundredDaysMs);
  values["subscriber-stall-ms"] = millis(out.subscriber_stall, 1, kHundredDaysMs);
  // --- end process service ---
  // --- output retention (issue 13 part 1) ---
  values["output-retention-max-bytes"] = [&](const std::string& v) {
    return parse_uint(v, out.output_retention_max_bytes, 1ull << 40) && out.output_retention_max_bytes >= 4096;
  };
  values["output-retention-total-bytes"] = [&](const std::string& v) {
    return parse_uint(v, out.output_retention_total_bytes, 1ull << 40);
  };
  values["output-retention-ms"] = millis(out.output_retention, 0, kHundredDaysMs);
  values["output-retention-max-ended"] = [&](const std::string& v) {
    return parse_uint(v, out.output_retention_max_ended, 1ull << 20);
  };
  // --- end output retention ---
  // --- bounds on RPC and /init input (issue 7) ---
  values["max-init-depth"] = [&](const std::string& v) {
    return parse_uint(v, out.max_init_depth, 100000) && out.max_init_depth >= 2;
  };
  values["library-log-lines-per-minute"] = [&](const std::string& v) {
    return parse_uint(v, out.library_log_lines_per_minute, 1000000);
  };
  // --- end bounds on RPC and /init input ---
  values["log-gather-ms"] = millis(out.log_gather, 0, 1000);  // bench2
  // --- uploads (issue 8) ---
  values["upload-idle-timeout-ms"] = millis(out.upload_idle_timeout, 1, kHundredDaysMs);
  // --- end uploads ---
  // --- directory watching (issue 9) ---
  auto count = [](std::size_t& field, std::uint64_t min, std::uint64_t max) {
    return [&field, min, max](const std::string& v) { return parse_uint(v, field, max) && field >= min; };
  };
  values["max-inotify-watches"] = count(out.max_inotify_watches, 1, 1ull << 31);
  values["watch-queue-events"] = count(out.watch_queue_events, 1, 1ull << 32);
  values["watch-queue-bytes"] = count(out.watch_queue_bytes, 1024, 1ull << 40);
  values["watcher-queue-events"] = count(out.watcher_queue_events, 1, 1ull << 32);
  values["watcher-queue-bytes"] = count(out.watcher_queue_bytes, 1024, 1ull << 40);
  values["max-watchers"] = count(out.max_watchers, 1, 1ull << 24);
  values["watcher-idle-timeout-ms"] = millis(out.watcher_idle_timeout, 1, kHundredDaysMs);
  // --- end directory watching ---
  // --- pause hooks (operations issue) ---
  values["thaw-watchdog-ms"] = millis(out.thaw_watchdog, 0, kHundredDaysMs);
  values["freeze-max-cgroups"] = count(out.freeze_max_cgroups, 1, 1ull << 24);
  values["collapse-min-resident-pct"] = [&](const std::string& v) {
    return parse_uint(v, out.collapse_min_resident_pct, 100);
  };
  values["fsfreeze-path"] = [&](const std::string& v) {
    out.fsfreeze_path = v;
    return !v.empty() && v[0] == '/';
  };
  values["log-queue-bytes"] = count(out.log_queue_bytes, 4096, 1ull << 32);
  // --- end pause hooks ---
  // --- directories as archives (issue 13 part 3) ---
  values["archive-max-entries"] = count(out.archive_max_entries, 1, 1ull << 32);
  values["archive-max-bytes"] = count(out.archive_max_bytes, 1, 1ull << 50);
  values["archive-max-name-bytes"] = count(out.archive_max_name_bytes, 100, 1ull << 20);
  values["archive-max-header-bytes"] = count(out.archive_max_header_bytes, 512, 1ull << 30);
  values["archive-max-depth"] = count(out.archive_max_depth, 1, 4096);
  // --- end directories as archives ---
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.size() < 2 || a[0] != '-') return "unexpected argument: " + a;
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (auto b = bools.find(name); b != bools.end()) {
      if (value && !parse_bool(*value, *b->second)) return "invalid boolean value \"" + *value + "\" for flag -" + name;
      if (!value) *b->second = true;
      continue;
    }
    auto s = values.find(name);
    if (s == values.end()) return "flag provided but not defined: -" + name;
    if (!value) {
      if (i + 1 >= args.size()) return "flag needs an argument: -" + name;
      value = args[++i];
    }
    if (!s->second(*value)) return "invalid value \"" + *value + "\" for flag -" + name;
  }
  return std::nullopt;
}

}  // namespace envd
