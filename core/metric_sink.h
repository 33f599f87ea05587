// How stages report numbers: an abstract MetricSink (leveldb's Env trick), so that stages never see
// the store. The job-side implementation appends JSON lines to metrics.jsonl; the runner ingests
// that file.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace upcycle::core {

/// Receives scalar metrics. Implementations must tolerate being called from one thread only.
class MetricSink {
 public:
  virtual ~MetricSink() = default;
  /// Records values at a training step. Keys are free-form ("loss", "lr", "util/l0/e1").
  virtual void log(int64_t step, const std::map<std::string, double>& values) = 0;
};

/// Appends {"step":N,"time":unix_s,"values":{...}} per call to `path`, flushed per line, so a crash
/// loses at most the line being written; ingestion skips a torn last line.
class JsonlMetricSink : public MetricSink {
 public:
  explicit JsonlMetricSink(std::string path) : path_(std::move(path)) {}
  void log(int64_t step, const std::map<std::string, double>& values) override;

 private:
  std::string path_;
};

/// Sends every call to each of `sinks` (the trainer's metrics.jsonl and its event file).
class TeeMetricSink : public MetricSink {
 public:
  explicit TeeMetricSink(std::vector<MetricSink*> sinks) : sinks_(std::move(sinks)) {}
  void log(int64_t step, const std::map<std::string, double>& values) override {
    for (auto* s : sinks_) s->log(step, values);
  }

 private:
  std::vector<MetricSink*> sinks_;
};

/// Discards everything (tests, eval-only helpers).
class NullMetricSink : public MetricSink {
 public:
  void log(int64_t, const std::map<std::string, double>&) override {}
};

}  // namespace upcycle::core
