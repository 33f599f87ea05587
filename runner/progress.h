// How far a running job is, from what it writes as it goes: its spec (the token budget) and the
// last line of its metrics.jsonl (tokens done, loss, tok/s). For `upcycle status`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>

namespace upcycle::runner {

/// "5.12k/64k tokens (8%), loss 5.123, 1.2k tok/s, ETA 52 s" for a training job in `dir`;
/// "" when it has logged nothing yet or is not a training job.
std::string job_progress(const std::string& dir);

/// On a terminal: the running jobs and their progress, kept below the log lines and redrawn every
/// second by a thread of its own (core::set_footer). Elsewhere it does nothing: every event is one
/// log line. The runner tells it what started and finished.
class LiveView {
 public:
  LiveView();
  ~LiveView();
  LiveView(const LiveView&) = delete;
  LiveView& operator=(const LiveView&) = delete;

  void started(const std::string& label, const std::string& dir);
  void finished(const std::string& label);
  /// Replaces the whole set (label -> job directory), for executors polled in passes (Slurm).
  void set_running(std::map<std::string, std::string> running);

 private:
  void draw();
  std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::string, std::string> running_;
  bool stop_ = false;
  bool changed_ = false;
  std::thread thread_;
};
}  // namespace upcycle::runner
