#pragma once
// Structured logging: one JSON object per line on stderr (timestamp, level, logger, message).
// Callers pass finished strings; payload bodies and secrets are never logged.
#include <string_view>

namespace envd::log {

enum class Level { debug, info, warn, error, off };

void init(Level level);
bool parse_level(std::string_view name, Level& out);
bool enabled(Level level);

void write(Level level, std::string_view logger, std::string_view message);
inline void debug(std::string_view logger, std::string_view m) { write(Level::debug, logger, m); }
inline void info(std::string_view logger, std::string_view m) { write(Level::info, logger, m); }
inline void warn(std::string_view logger, std::string_view m) { write(Level::warn, logger, m); }
inline void error(std::string_view logger, std::string_view m) { write(Level::error, logger, m); }

}  // namespace envd::log
