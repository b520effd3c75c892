#include "envd/log.h"

#include "envd/json_util.h"

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdio>
#include <ctime>
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

spdlog::logger& sink() {
  // The line is fully formatted by us; spdlog only serialises writes and flushes.
  static auto logger = [] {
    auto l = spdlog::stderr_logger_st("envd");
    l->set_pattern("%v");
    l->set_level(spdlog::level::trace);
    l->flush_on(spdlog::level::trace);
    return l;
  }();
  return *logger;
}
}  // namespace

Field::Field(std::string_view k, std::string_view v) : key(k) { append_json_string(json, v); }

Field::Field(std::string_view k, double v) : key(k) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v);
  json = buf;
}

void init(Level level) { g_level = level; }

void flush() { sink().flush(); }

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
  auto now = std::chrono::system_clock::now();
  auto secs = std::chrono::system_clock::to_time_t(now);
  auto nanos = std::chrono::duration_cast<std::chrono::nanoseconds>(now.time_since_epoch()).count() % 1000000000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char ts[64];
  std::snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(nanos));
  std::string line = "{\"timestamp\":\"";
  line += ts;
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
  sink().log(spdlog::level::info, "{}", line);
}

}  // namespace envd::log
