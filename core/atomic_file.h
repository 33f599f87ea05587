// Whole-file I/O that never leaves a half-written file where a complete one is expected:
// write to "<path>.tmp.<pid>", fsync, rename over <path>, fsync the directory.
#pragma once

#include <cstdint>
#include <string>

namespace upcycle::core {

/// Atomically replaces `path` with `content`. Throws upcycle::Error naming the path and errno text.
void write_file_atomic(const std::string& path, const std::string& content);

/// The most read_file reads unless told otherwise: specs, configs, results, recipes, logs.
inline constexpr int64_t kMaxReadBytes = int64_t(256) << 20;

/// Reads a whole regular file of at most `max_bytes`. Anything else (a FIFO, a device such as
/// /dev/zero, a directory) is refused without blocking, and so is a larger file: upcycle::Error
/// naming the path and the reason.
std::string read_file(const std::string& path, int64_t max_bytes = kMaxReadBytes);

/// Appends one line (a '\n' is added) and flushes it to the OS. Used for metrics.jsonl.
void append_line(const std::string& path, const std::string& line);

/// Creates a directory and its parents; no error if it exists.
void make_dirs(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace upcycle::core
