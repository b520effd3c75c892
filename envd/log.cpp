#include "envd/log.h"

#include <pthread.h>
#include <unistd.h>

#include <cerrno>

#include "envd/json_util.h"

#include <google/protobuf/stubs/logging.h>

#include <charconv>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>

namespace envd::log {

namespace {
Level g_level = Level::info;
}  // namespace

void append_json_string(std::string& out, std::string_view s) { append_go_json_string(out, s); }

namespace {
constexpr std::string_view level_name(Level l) {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warn: return "warn";
    case Level::error: return "error";
    case Level::off: return "off";
  }
  return "info";
}

// Writes all of `data` (a short write or EINTR continues; an error drops the rest).
void write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// "2026-11-28T08:21:05.123456789Z": the date and time part is formatted once per second (per
// thread), the nanoseconds by hand (snprintf and gmtime_r were a third of a line's cost).
void append_timestamp(std::string& line) {
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() % 1000000000;
  thread_local std::time_t cached_secs = -1;
  thread_local char cached[64];
  if (secs != cached_secs) {
    std::tm tm{};
    gmtime_r(&secs, &tm);
    std::snprintf(cached, sizeof cached, "%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                  tm.tm_hour, tm.tm_min, tm.tm_sec);
    cached_secs = secs;
  }
  line += cached;
  char ns[9];
  for (int i = 8; i >= 0; --i) {
    ns[i] = static_cast<char>('0' + nanos % 10);
    nanos /= 10;
  }
  line.append(ns, sizeof ns);
  line += 'Z';
}

std::string format_line(Level level, std::string_view logger, std::string_view message,
                        std::initializer_list<Field> fields) {
  std::size_t size = 96 + logger.size() + message.size();
  for (const auto& f : fields) size += f.key.size() + f.json.size() + 4;
  std::string line;
  line.reserve(size);
  line += "{\"timestamp\":\"";
  append_timestamp(line);
  line += "\",\"level\":\"";
  line += level_name(level);
  line += "\",\"logger\":";
  append_json_string(line, logger);
  line += ",\"message\":";
  append_json_string(line, message);
  for (const auto& f : fields) {
    line += ',';
    append_json_string(line, f.key);
    line += ':';
    line += f.json;
  }
  line += "}";
  return line;
}

std::mutex g_sync_mu;          // the synchronous path (before start_async)
AsyncSink* g_async = nullptr;  // never destroyed: see AsyncSink
}  // namespace

Field::Field(std::string_view k, std::string_view v) : key(k) { append_json_string(json, v); }

Field::Field(std::string_view k, double v) : key(k) {
  char buf[64];
  // As "%.3f" (correctly rounded, fixed notation), without printf.
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed, 3);
  if (ec == std::errc()) {
    json.assign(buf, end);
  } else {
    std::snprintf(buf, sizeof buf, "%.3f", v);
    json = buf;
  }
}

void init(Level level) { g_level = level; }

void start_async(int fd, std::size_t max_queue_bytes, std::chrono::milliseconds gather) {
  if (!g_async) g_async = new AsyncSink(fd, max_queue_bytes, gather);
}

void flush(std::chrono::milliseconds timeout) {
  if (g_async) g_async->flush(timeout);
}

AsyncSink::AsyncSink(int fd, std::size_t max_queue_bytes, std::chrono::milliseconds gather)
    : fd_(fd), max_bytes_(max_queue_bytes), gather_(gather) {
  thread_ = std::thread([this] { run(); });
}

AsyncSink::~AsyncSink() { stop(); }

void AsyncSink::push(std::string line) {
  std::lock_guard lock(mu_);
  ++pushed_;
  queued_bytes_ += line.size() + 1;
  queue_.push_back(std::move(line));
  // Oldest first, never the line just queued.
  while (queued_bytes_ > max_bytes_ && queue_.size() > 1) {
    queued_bytes_ -= queue_.front().size() + 1;
    queue_.pop_front();
    ++dropped_total_;
    ++dropped_unreported_;
    ++settled_;
  }
  // Only a sleeping thread needs the wake-up (a futex call and a context switch per line
  // otherwise); a gathering or writing one takes this line on its next pass.
  if (sleeping_) {
    sleeping_ = false;
    wake_.notify_one();
  }
}

bool AsyncSink::flush(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  const std::uint64_t target = pushed_;
  ++flush_waiters_;
  wake_.notify_one();  // ends a gathering wait
  bool done = idle_.wait_for(lock, timeout, [&] { return settled_ >= target && dropped_unreported_ == 0; });
  --flush_waiters_;
  return done;
}

std::uint64_t AsyncSink::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_total_;
}

void AsyncSink::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void AsyncSink::run() {
  pthread_setname_np(pthread_self(), "envd-log");
  constexpr std::size_t kBatchBytes = 256 * 1024;
  std::unique_lock lock(mu_);
  std::deque<std::string> taken;
  for (;;) {
    sleeping_ = true;
    wake_.wait(lock, [&] { return stopping_ || !queue_.empty() || dropped_unreported_ > 0; });
    sleeping_ = false;
    if (queue_.empty() && dropped_unreported_ == 0) break;  // stopping, all written
    if (gather_.count() > 0 && !stopping_ && flush_waiters_ == 0) {
      // Lines queued within `gather` go out in the same write (push() does not wake us meanwhile).
      wake_.wait_for(lock, gather_, [&] { return stopping_ || flush_waiters_ > 0; });
    }
    std::string batch;
    if (dropped_unreported_ > 0) {
      // Where the lines went missing, before the newer ones that were kept.
      batch =
          format_line(Level::warn, "log", "log lines dropped: the log could not be written (frozen or slow filesystem)",
                      {{"dropped", dropped_unreported_}, {"dropped_total", dropped_total_}});
      batch += '\n';
      dropped_unreported_ = 0;
    }
    // Take lines (moves, no copies) under the lock; build and write the batch without it, so that
    // push() on the loop never waits for more than a few pointer moves.
    std::size_t bytes = batch.size();
    while (!queue_.empty() && bytes < kBatchBytes) {
      bytes += queue_.front().size() + 1;
      queued_bytes_ -= queue_.front().size() + 1;
      taken.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    const std::uint64_t n = taken.size();
    lock.unlock();
    batch.reserve(bytes);
    for (auto& l : taken) {
      batch += l;
      batch += '\n';
    }
    taken.clear();
    write_all(fd_, batch);  // may block for as long as the filesystem is frozen
    lock.lock();
    settled_ += n;
    idle_.notify_all();
  }
  idle_.notify_all();
}

bool enabled(Level level) { return level >= g_level && g_level != Level::off; }

bool parse_level(std::string_view name, Level& out) {
  for (Level l : {Level::debug, Level::info, Level::warn, Level::error, Level::off}) {
    if (name == level_name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

void write(Level level, std::string_view logger, std::string_view message, std::initializer_list<Field> fields) {
  if (!enabled(level)) return;
  std::string line = format_line(level, logger, message, fields);
  if (g_async) {
    g_async->push(std::move(line));
    return;
  }
  line += '\n';
  std::lock_guard lock(g_sync_mu);
  write_all(STDERR_FILENO, line);
}

namespace {

struct LibraryLogLimit {
  std::mutex mu;
  std::size_t per_minute = 60;
  std::chrono::steady_clock::time_point window_start{};
  std::size_t in_window = 0;
  std::size_t suppressed = 0;
};
LibraryLogLimit g_lib_limit;

// libprotobuf's own log lines (e.g. "String field ... contains invalid UTF-8 data", which any
// client can trigger) would go to stderr as plain text between our JSON lines. Instead: one of our
// lines each, at most `per_minute` a minute, then one line saying how many were suppressed.
void protobuf_log(google::protobuf::LogLevel level, const char* filename, int line, const std::string& message) {
  Level ours = Level::warn;
  switch (level) {
    case google::protobuf::LOGLEVEL_INFO: ours = Level::debug; break;
    case google::protobuf::LOGLEVEL_WARNING: ours = Level::warn; break;
    case google::protobuf::LOGLEVEL_ERROR: ours = Level::warn; break;  // about a client's bytes
    case google::protobuf::LOGLEVEL_FATAL: ours = Level::error; break;
  }
  std::size_t suppressed = 0;
  {
    std::lock_guard lock(g_lib_limit.mu);
    auto now = std::chrono::steady_clock::now();
    if (now - g_lib_limit.window_start >= std::chrono::minutes(1)) {
      suppressed = g_lib_limit.suppressed;
      g_lib_limit.window_start = now;
      g_lib_limit.in_window = 0;
      g_lib_limit.suppressed = 0;
    }
    if (level != google::protobuf::LOGLEVEL_FATAL && g_lib_limit.in_window >= g_lib_limit.per_minute) {
      ++g_lib_limit.suppressed;
      return;
    }
    ++g_lib_limit.in_window;
  }
  if (suppressed > 0) {
    write(Level::warn, "protobuf", "libprotobuf log lines suppressed (rate limit)",
          {{"suppressed", static_cast<std::uint64_t>(suppressed)}});
  }
  write(ours, "protobuf", message, {{"source", std::string(filename ? filename : "") + ":" + std::to_string(line)}});
}

}  // namespace

void route_library_logs(std::size_t lines_per_minute) {
  {
    std::lock_guard lock(g_lib_limit.mu);
    g_lib_limit.per_minute = lines_per_minute;
  }
  google::protobuf::SetLogHandler(&protobuf_log);
}

}  // namespace envd::log
