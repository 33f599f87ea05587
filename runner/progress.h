// How far a running job is, from what it writes as it goes: its spec (the token budget) and the
// last line of its metrics.jsonl (tokens done, loss, tok/s). For `upcycle status`.
#pragma once

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace upcycle::runner {

/// How far a training job is: its spec's token budget and its metrics.jsonl's last line.
struct JobProgress {
  double tokens = 0, total = 0, loss = 0, tokens_per_s = 0;
  /// Seconds left at the current rate; -1 when unknown (no rate yet, or done).
  double eta_s() const;
};

/// The progress of the training job in `dir`; nullopt when it has logged nothing yet or is not a
/// training job.
std::optional<JobProgress> read_job_progress(const std::string& dir);

/// "5.12k/64k tokens (8%), loss 5.123, 1.2k tok/s, ETA 52 s" for a training job in `dir`;
/// "" when it has logged nothing yet or is not a training job.
std::string job_progress(const std::string& dir);

/// One line for logs and greps, key=value with plain numbers:
/// "progress stage=train_bam tokens=5120/64000 pct=8.0 loss=5.1230 tok_s=1234 eta_s=52"
/// (eta_s=- when unknown); "progress stage=S running" for a job without token progress.
std::string progress_line(const std::string& label, const std::optional<JobProgress>& p);

/// The running jobs and their progress. On a terminal: kept below the log lines and redrawn every
/// second (core::set_footer). Elsewhere (a log file, nohup, CI): one progress_line per running job
/// every `every_s` seconds (0: none), through the log. Runs on a thread of its own; the runner
/// tells it what started and finished.
class LiveView {
 public:
  explicit LiveView(int every_s);
  ~LiveView();
  LiveView(const LiveView&) = delete;
  LiveView& operator=(const LiveView&) = delete;

  void started(const std::string& label, const std::string& dir);
  void finished(const std::string& label);
  /// Replaces the whole set (label -> job directory), for executors polled in passes (Slurm).
  void set_running(std::map<std::string, std::string> running);

 private:
  std::map<std::string, std::string> running();
  void draw();
  void print_lines();
  std::mutex mu_;
  std::condition_variable wake_;
  std::map<std::string, std::string> running_;
  bool stop_ = false;
  bool changed_ = false;
  std::thread thread_;
};
}  // namespace upcycle::runner
