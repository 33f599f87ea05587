// Whole-file I/O that never leaves a half-written file where a complete one is expected:
// write to "<path>.tmp.<pid>", fsync, rename over <path>, fsync the directory.
#pragma once

#include <string>

namespace upcycle::core {

/// Atomically replaces `path` with `content`. Throws upcycle::Error naming the path and errno text.
void write_file_atomic(const std::string& path, const std::string& content);

/// Reads a whole file. Throws upcycle::Error naming the path when it cannot be read.
std::string read_file(const std::string& path);

/// Appends one line (a '\n' is added) and flushes it to the OS. Used for metrics.jsonl.
void append_line(const std::string& path, const std::string& line);

/// Creates a directory and its parents; no error if it exists.
void make_dirs(const std::string& path);

bool file_exists(const std::string& path);

}  // namespace upcycle::core
