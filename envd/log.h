#pragma once
// Structured logging: one JSON object per line on stderr (timestamp, level, logger, message, and
// optional extra fields such as a request id). Callers pass finished strings; payload bodies and
// secrets (the access token) are never logged.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace envd::log {

enum class Level { debug, info, warn, error, off };

void init(Level level);
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
// Writes buffered lines out (at shutdown).
void flush();

// Routes libprotobuf's log lines into ours (JSON, logger "protobuf"), at most `lines_per_minute`
// a minute (--library-log-lines-per-minute); the rest are counted and reported as suppressed.
void route_library_logs(std::size_t lines_per_minute);

}  // namespace envd::log
