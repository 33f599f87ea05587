#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

namespace upcycle::core {
namespace {

LogLevel level_from_env() {
  const char* v = std::getenv("UPCYCLE_LOG");
  if (!v) return LogLevel::kInfo;
  if (!std::strcmp(v, "debug")) return LogLevel::kDebug;
  if (!std::strcmp(v, "warn")) return LogLevel::kWarn;
  if (!std::strcmp(v, "error")) return LogLevel::kError;
  return LogLevel::kInfo;
}

std::atomic<LogLevel>& current_level() {
  static std::atomic<LogLevel> level{level_from_env()};
  return level;
}

}  // namespace

void set_log_level(LogLevel level) { current_level() = level; }

void log(LogLevel level, const std::string& message) {
  if (level < current_level()) return;
  static const char* kTags[] = {"debug: ", "", "warning: ", "error: "};
  std::string line = "[upcycle] " + std::string(kTags[static_cast<int>(level)]) + message + "\n";
  // One write() per line keeps lines whole when several processes share a log.
  ssize_t rc = ::write(STDERR_FILENO, line.data(), line.size());
  (void)rc;
}

}  // namespace upcycle::core
