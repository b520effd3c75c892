#pragma once
// Structured logging: one JSON object per line on stderr (stdout with -verbose; timestamp, level,
// logger, message, and optional extra fields such as a request id). Callers pass finished strings;
// payload bodies and secrets (the access token) are never logged.
//
// Once start_async() ran (envd's main does), write() never touches the file descriptor: lines go
// to a bounded in-memory queue that one thread of its own writes out. The log may be a file on a
// filesystem /fsfreeze froze, where every write blocks until the thaw: then only that thread
// waits, the queue keeps the newest lines (the oldest are dropped when it is full, counted, and
// a line saying how many is written when writing works again), and the event loop never stops.
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <initializer_list>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>

namespace envd::log {

enum class Level { debug, info, warn, error, off };

// Sets the level; until start_async(), lines are written to stderr synchronously (tests, tools).
void init(Level level);
// From now on lines go through an AsyncSink writing to `fd` (2, or 1 with -verbose), queueing at
// most `max_queue_bytes` (--log-queue-bytes) and gathering lines for `gather` (--log-gather-ms).
void start_async(int fd, std::size_t max_queue_bytes, std::chrono::milliseconds gather = std::chrono::milliseconds(0));

// A bounded line queue written to a file descriptor by a thread of its own. push() never blocks
// on the descriptor. The thread is detached and the sink never destroyed by envd (at exit a
// thread blocked on a frozen filesystem must not be joined); tests stop() it.
class AsyncSink {
 public:
  // `gather`: once woken by a line, the thread waits that long for more before it writes, so a
  // busy loop (a log line per request) wakes it at most once per `gather`, not once per line;
  // flush() and stop() cut the wait short. 0: every line is written as soon as it is queued.
  AsyncSink(int fd, std::size_t max_queue_bytes, std::chrono::milliseconds gather = std::chrono::milliseconds(0));
  ~AsyncSink();
  AsyncSink(const AsyncSink&) = delete;
  AsyncSink& operator=(const AsyncSink&) = delete;

  // Queues one line (a newline is added). When the queue would exceed its bound, the oldest
  // lines are dropped first (the newest line is always kept).
  void push(std::string line);
  // Waits until everything queued so far is written, at most `timeout`; false if it was not.
  bool flush(std::chrono::milliseconds timeout);
  // Lines dropped so far.
  std::uint64_t dropped() const;
  // Ends the thread once the queue is written (tests; blocks while the descriptor blocks).
  void stop();

 private:
  void run();

  int fd_;
  std::size_t max_bytes_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::deque<std::string> queue_;
  std::size_t queued_bytes_ = 0;
  std::uint64_t dropped_total_ = 0;
  std::uint64_t dropped_unreported_ = 0;
  std::uint64_t pushed_ = 0;   // lines accepted (dropped ones included)
  std::uint64_t settled_ = 0;  // lines written or dropped
  bool stopping_ = false;
  std::chrono::milliseconds gather_;
  bool sleeping_ = false;          // the thread waits for a line: push() wakes it
  std::size_t flush_waiters_ = 0;  // flush() calls waiting: no gathering
  std::thread thread_;
};
bool parse_level(std::string_view name, Level& out);
bool enabled(Level level);

// One extra key of a log line; the value is kept as rendered JSON.
struct Field {
  Field(std::string_view k, std::string_view v);
  Field(std::string_view k, const char* v) : Field(k, std::string_view(v)) {}
  Field(std::string_view k, const std::string& v) : Field(k, std::string_view(v)) {}
  template <std::integral T>
  Field(std::string_view k, T v) : key(k), json(std::to_string(v)) {}
  Field(std::string_view k, double v);

  std::string_view key;
  std::string json;
};

void write(Level level, std::string_view logger, std::string_view message, std::initializer_list<Field> fields = {});
inline void debug(std::string_view logger, std::string_view m) { write(Level::debug, logger, m); }
inline void info(std::string_view logger, std::string_view m) { write(Level::info, logger, m); }
inline void warn(std::string_view logger, std::string_view m) { write(Level::warn, logger, m); }
inline void error(std::string_view logger, std::string_view m) { write(Level::error, logger, m); }

// Appends `s` as a JSON string literal (quotes included).
void append_json_string(std::string& out, std::string_view s);
// Writes queued lines out (at shutdown), waiting at most `timeout` (the log file may sit on a
// frozen filesystem).
void flush(std::chrono::milliseconds timeout = std::chrono::milliseconds(1000));

// Routes libprotobuf's log lines into ours (JSON, logger "protobuf"), at most `lines_per_minute`
// a minute (--library-log-lines-per-minute); the rest are counted and reported as suppressed.
void route_library_logs(std::size_t lines_per_minute);

}  // namespace envd::log
