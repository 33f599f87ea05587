#include "core/log.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

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

// The footer on the terminal: its text and how many lines it takes.
struct Footer {
  std::mutex mu;
  std::string text;
  int lines = 0;
};

Footer& footer() {
  static Footer f;
  return f;
}

// Erases the footer (cursor to the start of its first line, clear to the end of the screen).
std::string erase(const Footer& f) {
  return f.lines > 0 ? "\x1b[" + std::to_string(f.lines) + "F\x1b[J" : "";
}

void write_all(const std::string& s) {
  ssize_t rc = ::write(STDERR_FILENO, s.data(), s.size());
  (void)rc;
}

}  // namespace

void set_log_level(LogLevel level) { current_level() = level; }

bool footer_enabled() {
  static const bool tty = ::isatty(STDERR_FILENO) == 1;
  return tty;
}

void set_footer(const std::string& text) {
  if (!footer_enabled()) return;
  Footer& f = footer();
  std::lock_guard<std::mutex> lock(f.mu);
  std::string body = text.empty() || text.back() == '\n' ? text : text + "\n";
  write_all(erase(f) + body);
  f.text = body;
  f.lines = static_cast<int>(std::count(body.begin(), body.end(), '\n'));
}

void log(LogLevel level, const std::string& message) {
  if (level < current_level()) return;
  static const char* kTags[] = {"debug: ", "", "warning: ", "error: "};
  std::string line = "[upcycle] " + std::string(kTags[static_cast<int>(level)]) + message + "\n";
  if (!footer_enabled()) {
    write_all(line);  // one write() per line keeps lines whole when several processes share a log
    return;
  }
  Footer& f = footer();
  std::lock_guard<std::mutex> lock(f.mu);
  write_all(erase(f) + line + f.text);
}

}  // namespace upcycle::core
