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

}  // namespace upcycle::core
