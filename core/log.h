// Minimal leveled logging to stderr: "[upcycle] message". Thread-safe (one write per line).
#pragma once

#include <string>

namespace upcycle::core {

enum class LogLevel { kDebug, kInfo, kWarn, kError };

/// Default: kInfo, or the value of UPCYCLE_LOG (debug|info|warn|error).
void set_log_level(LogLevel level);
void log(LogLevel level, const std::string& message);
inline void log_info(const std::string& m) { log(LogLevel::kInfo, m); }
inline void log_warn(const std::string& m) { log(LogLevel::kWarn, m); }
inline void log_error(const std::string& m) { log(LogLevel::kError, m); }
inline void log_debug(const std::string& m) { log(LogLevel::kDebug, m); }

/// On a terminal: `text` (lines) kept below the log lines and redrawn in place, a live view of what
/// is running; log lines are printed above it. "" removes it. Does nothing when stderr is not a
/// terminal, where every event stays one line.
void set_footer(const std::string& text);
/// Whether stderr is a terminal (a footer is shown).
bool footer_enabled();

}  // namespace upcycle::core
