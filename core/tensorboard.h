// TensorBoard event files, written by hand: `events.out.tfevents.<unix s>.<host>.<pid>.<n>` in a
// job's directory, each record in TFRecord framing (length, masked CRC32C of the length, an Event
// protobuf, masked CRC32C of the data), each Event a wall time, a step and a Summary of scalar
// values (simple_value, float32). `tensorboard --logdir runs/` shows every job live. No protobuf
// library: the three messages are encoded here field by field.
#pragma once

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "core/job_files.h"
#include "core/metric_sink.h"

namespace upcycle::core {

/// CRC-32C (Castagnoli), as TFRecord uses it; crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const std::string& data);
/// TFRecord's masked form: rotate right by 15 and add 0xa282ead8.
uint32_t masked_crc32c(const std::string& data);

/// A TFRecord: the length (8 bytes little-endian), its masked CRC, `data`, its masked CRC.
std::string tfrecord(const std::string& data);

/// The serialised Event {wall_time, step, summary {value {tag, simple_value}}...}.
std::string scalar_event(double wall_time, int64_t step,
                         const std::map<std::string, double>& values);

/// Appends scalar events to a new event file in `dir`, created (with its file_version record) on
/// the first log, so a process that logs nothing leaves no file. Each event is flushed as it is
/// written; a crash loses at most the record being written (readers stop at a torn last record).
class TensorBoardSink : public MetricSink {
 public:
  explicit TensorBoardSink(std::string dir) : dir_(std::move(dir)) {}
  ~TensorBoardSink() override;
  TensorBoardSink(const TensorBoardSink&) = delete;
  TensorBoardSink& operator=(const TensorBoardSink&) = delete;
  void log(int64_t step, const std::map<std::string, double>& values) override;

 private:
  void write(const std::string& record);
  std::string dir_;
  std::string path_;
  std::FILE* file_ = nullptr;
};

/// The TensorBoard tag of an eval row: "eval/<model>/<task>/<metric>", "/<filter>" appended when
/// the filter is not "none".
std::string eval_tag(const EvalRow& row);

/// An eval job's results as one event (step 0) in a new event file in `dir`; none without rows.
void write_eval_events(const std::string& dir, const std::vector<EvalRow>& rows);

}  // namespace upcycle::core
