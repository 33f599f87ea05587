#include "stages/jobs/job_kinds.h"

#include <filesystem>

#include "core/log.h"
#include "core/metric_sink.h"
#include "core/tensorboard.h"
#include "stages/io/checkpoint.h"
#include "stages/train/peak_memory.h"

namespace upcycle::stages {

const std::vector<JobKind>& job_kinds() {
  static const std::vector<JobKind> kKinds = {prepare_job_kind(), train_job_kind(),
                                              upcycle_job_kind(), eval_job_kind(),
                                              command_job_kind(), import_job_kind()};
  return kKinds;
}

const JobKind& find_job_kind(const std::string& name) {
  std::string names;
  for (const auto& k : job_kinds()) {
    if (k.name == name) return k;
    names += (names.empty() ? "" : ", ") + k.name;
  }
  throw core::FieldError("kind", "unknown job kind '" + name + "' (kinds: " + names + ")");
}

JobMemory::JobMemory(std::string device) : device_(std::move(device)) {
  track_cpu_memory();
  reset_memory_peak(device_);
}

void JobMemory::report(const JobContext& ctx, const MemoryEstimate& estimate) const {
  const double peak = double(memory_peak(device_));
  core::log_info("memory: peak " + format_bytes(peak) + ", the memory model's estimate " +
                 describe_memory(estimate));
  const std::map<std::string, double> values = {{"memory/peak_bytes", peak},
                                                {"memory/estimate_bytes", double(estimate.peak)}};
  core::JsonlMetricSink(ctx.dir + "/" + core::kMetricsFile).log(0, values);
  core::TensorBoardSink(ctx.dir).log(0, values);
}

core::ArtifactRow checkpoint_artifact(const std::string& dir) {
  const CheckpointMeta meta = read_checkpoint_meta(dir);
  int64_t bytes = 0;
  for (const auto& w : meta.weights)
    bytes += static_cast<int64_t>(std::filesystem::file_size(dir + "/" + w.file));
  return {dir, "checkpoint", weights_digest(meta), bytes};
}

}  // namespace upcycle::stages
