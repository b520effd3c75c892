#pragma once
// GET /metrics data (contract §6.2): CPU, memory and disk from /proc/stat, /proc/meminfo and
// statfs("/"). A background sampler on the event loop takes a sample every interval (2 s) from
// start; cpu_used_pct always comes from the sampler (the CPU share between its last two
// samples), so any number of callers see the same value and never shorten each other's window
// (envd's [QUIRK] of one process-global baseline per caller). Recent samples are kept, bounded.
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

#include "envd/procfs.h"

namespace envd {

// Aggregate CPU jiffies as gopsutil counts them: total excludes guest time (already in user),
// busy = total − idle − iowait.
struct CpuTimes {
  std::uint64_t busy = 0;
  std::uint64_t total = 0;
};

// Parses /proc/stat: the aggregate "cpu" line and the number of "cpuN" lines.
std::optional<CpuTimes> parse_proc_stat(std::string_view text, std::uint32_t* cpu_count = nullptr);

// CPU busy share between two readings in percent, clamped to [0, 100] (gopsutil calculateBusy).
double cpu_percent(const CpuTimes& before, const CpuTimes& after);

struct Metrics {
  std::int64_t ts = 0;  // unix seconds
  std::uint32_t cpu_count = 0;
  double cpu_used_pct = 0;  // rounded to 2 decimals
  std::uint64_t mem_total = 0;
  std::uint64_t mem_used = 0;
  std::uint64_t mem_cache = 0;
  std::uint64_t disk_used = 0;
  std::uint64_t disk_total = 0;
};

// One JSON object in envd's field order (no trailing newline).
std::string metrics_json(const Metrics& m);
// The shortest decimal of a value rounded to 2 places, as Go prints a float32 ("12.5", "0").
std::string format_percent(double pct);

// Where the readings come from (tests point these at fixture files).
struct MetricsSources {
  std::string proc_stat = "/proc/stat";
  std::string meminfo = "/proc/meminfo";
  std::string disk_path = "/";
};

class MetricsSampler {
 public:
  MetricsSampler(boost::asio::any_io_executor ex, std::chrono::milliseconds interval, MetricsSources sources = {},
                 std::chrono::milliseconds history_span = std::chrono::minutes(5));

  // Takes the baseline reading and starts the periodic samples; stop() cancels them.
  void start();
  void stop();

  // Takes one sample now (the timer calls this; tests call it directly).
  void sample();

  // Fresh memory, disk and time with the sampler's latest CPU share. Before the first sample, the
  // CPU share since start is computed without moving the baseline. nullopt: a reading failed.
  std::optional<Metrics> current() const;

  // Samples, oldest first: at most history_span / interval of them (and never more than 1024).
  const std::deque<Metrics>& history() const { return history_; }
  std::size_t capacity() const { return capacity_; }

 private:
  std::optional<Metrics> read(const CpuTimes* since, CpuTimes* now_out) const;
  void arm();

  boost::asio::steady_timer timer_;
  std::chrono::milliseconds interval_;
  MetricsSources sources_;
  std::size_t capacity_;
  std::optional<CpuTimes> last_cpu_;
  std::deque<Metrics> history_;
  bool stopped_ = false;
  bool warned_ = false;
};

}  // namespace envd
