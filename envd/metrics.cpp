#include "envd/metrics.h"

#include <fcntl.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "envd/log.h"
#include "envd/text_file.h"

namespace envd {

std::optional<CpuTimes> parse_proc_stat(std::string_view text, std::uint32_t* cpu_count) {
  std::optional<CpuTimes> out;
  std::uint32_t cpus = 0;
  for_each_line(text, [&](std::string_view line) {
    std::string_view rest = line;
    std::string_view name = next_word(rest);
    if (name.size() > 3 && name.substr(0, 3) == "cpu") {
      ++cpus;
      return;
    }
    if (name != "cpu") return;
    // user nice system idle iowait irq softirq steal guest guest_nice
    std::uint64_t v[10] = {};
    int n = 0;
    for (; n < 10; ++n) {
      std::string_view w = next_word(rest);
      if (w.empty() || !to_u64(w, v[n])) break;
    }
    if (n < 4) return;
    std::uint64_t total = 0;
    for (int i = 0; i < 8 && i < n; ++i) total += v[i];  // guest time is already counted in user
    CpuTimes t;
    t.total = total;
    t.busy = total - v[3] - (n > 4 ? v[4] : 0);
    out = t;
  });
  if (cpu_count) *cpu_count = cpus;
  return out;
}

double cpu_percent(const CpuTimes& before, const CpuTimes& after) {
  if (after.busy <= before.busy) return 0;
  if (after.total <= before.total) return 100;
  double pct = static_cast<double>(after.busy - before.busy) / static_cast<double>(after.total - before.total) * 100;
  return std::clamp(pct, 0.0, 100.0);
}

std::string format_percent(double pct) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", std::round(pct * 100) / 100);
  std::string s = buf;
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

std::string metrics_json(const Metrics& m) {
  constexpr std::uint64_t kMiB = 1u << 20;
  std::string out = "{\"ts\":" + std::to_string(m.ts);
  out += ",\"cpu_count\":" + std::to_string(m.cpu_count);
  out += ",\"cpu_used_pct\":" + format_percent(m.cpu_used_pct);
  out += ",\"mem_total_mib\":" + std::to_string(m.mem_total / kMiB);
  out += ",\"mem_used_mib\":" + std::to_string(m.mem_used / kMiB);
  out += ",\"mem_total\":" + std::to_string(m.mem_total);
  out += ",\"mem_used\":" + std::to_string(m.mem_used);
  out += ",\"mem_cache\":" + std::to_string(m.mem_cache);
  out += ",\"disk_used\":" + std::to_string(m.disk_used);
  out += ",\"disk_total\":" + std::to_string(m.disk_total);
  out += "}";
  return out;
}

MetricsSampler::MetricsSampler(boost::asio::any_io_executor ex, std::chrono::milliseconds interval,
                               MetricsSources sources, std::chrono::milliseconds history_span)
    : timer_(std::move(ex)),
      interval_(interval),
      sources_(std::move(sources)),
      capacity_(std::clamp<std::size_t>(
          static_cast<std::size_t>(history_span / std::max(interval, std::chrono::milliseconds(1))), 1, 1024)) {}

std::optional<Metrics> MetricsSampler::read(const CpuTimes* since, CpuTimes* now_out) const {
  auto stat = read_file(sources_.proc_stat);
  auto meminfo = read_file(sources_.meminfo);
  if (!stat || !meminfo) return std::nullopt;
  Metrics m;
  auto cpu = parse_proc_stat(*stat, &m.cpu_count);
  auto mem = parse_meminfo(*meminfo);
  struct statfs fs {};
  if (!cpu || !mem || ::statfs(sources_.disk_path.c_str(), &fs) != 0) return std::nullopt;
  if (m.cpu_count == 0) m.cpu_count = static_cast<std::uint32_t>(std::max(1L, ::sysconf(_SC_NPROCESSORS_ONLN)));
  if (now_out) *now_out = *cpu;
  m.ts = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  m.cpu_used_pct = since ? std::round(cpu_percent(*since, *cpu) * 100) / 100 : 0;
  m.mem_total = mem->total;
  m.mem_used = mem->used;
  m.mem_cache = mem->cache;
  auto bsize = static_cast<std::uint64_t>(fs.f_bsize);
  m.disk_total = static_cast<std::uint64_t>(fs.f_blocks) * bsize;
  std::uint64_t avail = static_cast<std::uint64_t>(fs.f_bavail) * bsize;
  m.disk_used = m.disk_total > avail ? m.disk_total - avail : 0;  // reserved blocks count as used
  return m;
}

void MetricsSampler::start() {
  stopped_ = false;
  CpuTimes now;
  if (read(nullptr, &now)) last_cpu_ = now;
  timer_.expires_after(interval_);
  arm();
}

void MetricsSampler::stop() {
  stopped_ = true;
  timer_.cancel();
}

void MetricsSampler::arm() {
  timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopped_) return;
    sample();
    // A fixed cadence: the next deadline follows the previous one, not the end of this sample.
    timer_.expires_at(timer_.expiry() + interval_);
    if (timer_.expiry() < std::chrono::steady_clock::now()) timer_.expires_after(interval_);
    arm();
  });
}

void MetricsSampler::sample() {
  CpuTimes now;
  auto m = read(last_cpu_ ? &*last_cpu_ : nullptr, &now);
  if (!m) {
    if (!warned_) log::warn("metrics", "cannot read /proc/stat, /proc/meminfo or statfs; metrics samples skipped");
    warned_ = true;
    return;
  }
  last_cpu_ = now;
  if (history_.size() == capacity_) history_.pop_front();
  history_.push_back(*m);
}

std::optional<Metrics> MetricsSampler::current() const {
  if (!history_.empty()) {
    auto m = read(nullptr, nullptr);
    if (!m) return std::nullopt;
    m->cpu_used_pct = history_.back().cpu_used_pct;
    return m;
  }
  return read(last_cpu_ ? &*last_cpu_ : nullptr, nullptr);
}

}  // namespace envd
