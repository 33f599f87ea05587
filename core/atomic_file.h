// Whole-file I/O that never leaves a half-written file where a complete one is expected:
// write to "<path>.tmp.<pid>", fsync, rename over <path>, fsync the directory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace upcycle::core {

/// Atomically replaces `path` with `content`. Throws upcycle::Error naming the path and errno text.
void write_file_atomic(const std::string& path, const std::string& content);

/// fsyncs a directory, so renames and creations inside it are durable (best effort: a file system
/// that cannot open directories is left alone).
void fsync_directory(const std::string& dir);

/// write_file_atomic for content that arrives in pieces (a checkpoint shard, tensor by tensor):
/// write() appends to "<path>.tmp.<pid>", commit() fsyncs it and renames it over `path`. A writer
/// destroyed before commit() removes its temp file. Throws upcycle::Error naming the path.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  void write(const void* data, size_t n);
  void commit();
  uint64_t bytes_written() const { return bytes_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t bytes_ = 0;
};

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
