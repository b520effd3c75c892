#include "envd/metrics.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace envd;

namespace {
constexpr const char* kStat1 =
    "cpu  100 10 50 1000 40 5 5 0 30 0\n"
    "cpu0 50 5 25 500 20 2 3 0 15 0\n"
    "cpu1 50 5 25 500 20 3 2 0 15 0\n"
    "intr 12345 0 0\n"
    "ctxt 999\n"
    "btime 1700000000\n";
// +60 busy (user 40, system 20), +100 idle, +40 iowait: total +200 → 30 %.
constexpr const char* kStat2 =
    "cpu  140 10 70 1100 80 5 5 0 30 0\n"
    "cpu0 70 5 35 550 40 2 3 0 15 0\n"
    "cpu1 70 5 35 550 40 3 2 0 15 0\n";
constexpr const char* kMeminfo =
    "MemTotal:        2048000 kB\n"
    "MemFree:          512000 kB\n"
    "MemAvailable:    1500000 kB\n"
    "Buffers:           10000 kB\n"
    "Cached:           300000 kB\n"
    "SwapCached:            0 kB\n"
    "SReclaimable:      20000 kB\n"
    "HugePages_Total:       0\n";

struct TempFile {
  explicit TempFile(const std::string& content) {
    char name[] = "/tmp/envd-metrics-XXXXXX";
    int fd = mkstemp(name);
    REQUIRE(fd >= 0);
    ::close(fd);
    path = name;
    write(content);
  }
  ~TempFile() { ::unlink(path.c_str()); }
  void write(const std::string& content) { std::ofstream(path, std::ios::trunc) << content; }
  std::string path;
};
}  // namespace

TEST_CASE("metrics: /proc/stat parsing as gopsutil counts it") {
  std::uint32_t cpus = 0;
  auto t = parse_proc_stat(kStat1, &cpus);
  REQUIRE(t);
  CHECK(cpus == 2);
  CHECK(t->total == 100 + 10 + 50 + 1000 + 40 + 5 + 5 + 0);  // guest (30) excluded: already in user
  CHECK(t->busy == t->total - 1000 - 40);
  auto t2 = parse_proc_stat(kStat2);
  REQUIRE(t2);
  CHECK(cpu_percent(*t, *t2) == doctest::Approx(30.0));
  CHECK(cpu_percent(*t2, *t) == 0);  // never negative
  CHECK(cpu_percent(*t, *t) == 0);
  CHECK(cpu_percent(CpuTimes{0, 10}, CpuTimes{5, 10}) == 100);  // busy moved, total did not
  CHECK_FALSE(parse_proc_stat("intr 1 2 3\n"));
  CHECK_FALSE(parse_proc_stat("cpu  1 2\n"));
  // Old kernels: only four columns.
  CHECK(parse_proc_stat("cpu 1 2 3 4\n")->busy == 6);
}

TEST_CASE("metrics: /proc/meminfo parsing") {
  auto m = parse_meminfo(kMeminfo);
  REQUIRE(m);
  CHECK(m->total == 2048000ull * 1024);
  CHECK(m->cache == (300000ull + 20000) * 1024);
  CHECK(m->used == (2048000ull - 512000 - 10000 - 300000 - 20000) * 1024);
  CHECK_FALSE(parse_meminfo("MemFree: 1 kB\n"));
  CHECK(parse_meminfo("MemTotal: 10 kB\nMemFree: 20 kB\n")->used == 0);  // never underflows
}

TEST_CASE("metrics: JSON in envd's field order, percent as Go prints a rounded float32") {
  CHECK(format_percent(0) == "0");
  CHECK(format_percent(100) == "100");
  CHECK(format_percent(12.5) == "12.5");
  CHECK(format_percent(12.345678) == "12.35");
  CHECK(format_percent(0.004) == "0");
  CHECK(format_percent(33.333333) == "33.33");
  Metrics m;
  m.ts = 1700000000;
  m.cpu_count = 2;
  m.cpu_used_pct = 7.25;
  m.mem_total = 3u << 20;
  m.mem_used = (1u << 20) + 5;
  m.mem_cache = 7;
  m.disk_used = 8;
  m.disk_total = 9;
  CHECK(metrics_json(m) == R"({"ts":1700000000,"cpu_count":2,"cpu_used_pct":7.25,"mem_total_mib":3,"mem_used_mib":1,)"
                           R"("mem_total":3145728,"mem_used":1048581,"mem_cache":7,"disk_used":8,"disk_total":9})");
}

TEST_CASE("metrics: the sampler owns the CPU baseline; callers do not move it") {
  boost::asio::io_context io;
  TempFile stat(kStat1), meminfo(kMeminfo);
  MetricsSampler sampler(io.get_executor(), std::chrono::milliseconds(1000), {stat.path, meminfo.path, "/"},
                         std::chrono::seconds(3));
  CHECK(sampler.capacity() == 3);
  sampler.start();
  stat.write(kStat2);
  // Before the first sample: the share since start, computed without moving the baseline.
  auto a = sampler.current();
  REQUIRE(a);
  CHECK(a->cpu_used_pct == doctest::Approx(30.0));
  CHECK(sampler.current()->cpu_used_pct == doctest::Approx(30.0));
  CHECK(a->cpu_count == 2);
  CHECK(a->mem_total == 2048000ull * 1024);
  CHECK(a->disk_total > 0);
  CHECK(a->disk_used <= a->disk_total);
  CHECK(a->ts > 1700000000);

  sampler.sample();
  REQUIRE(sampler.history().size() == 1);
  CHECK(sampler.history().back().cpu_used_pct == doctest::Approx(30.0));
  // No CPU progress since that sample: the next sample reads 0 %, and callers see the sampler's value.
  sampler.sample();
  CHECK(sampler.history().back().cpu_used_pct == 0);
  CHECK(sampler.current()->cpu_used_pct == 0);
  sampler.sample();
  sampler.sample();
  CHECK(sampler.history().size() == 3);  // bounded

  // A reading that fails: current() reports it (→ 500), the sampler skips the sample.
  MetricsSampler broken(io.get_executor(), std::chrono::milliseconds(1000), {"/nonexistent/stat", meminfo.path, "/"});
  broken.start();
  CHECK_FALSE(broken.current());
  broken.sample();
  CHECK(broken.history().empty());
  sampler.stop();
  broken.stop();
  io.run();
}

TEST_CASE("metrics: the timer samples on the loop") {
  boost::asio::io_context io;
  MetricsSampler sampler(io.get_executor(), std::chrono::milliseconds(10));
  sampler.start();
  while (sampler.history().size() < 3) io.run_one();
  sampler.stop();
  io.run();
  auto j = nlohmann::json::parse(metrics_json(sampler.history().front()));
  CHECK(j.size() == 10);
  CHECK(j["cpu_count"].get<int>() >= 1);
}
