// The train job: the trainer (train/trainer.h) on a TrainJobSpec, data parallel when launched as
// several ranks.
#include <cmath>

#include "core/log.h"
#include "core/metric_sink.h"
#include "core/tensorboard.h"
#include "stages/jobs/job_kinds.h"
#include "stages/spec/train.h"
#include "stages/train/trainer.h"

namespace upcycle::stages {
namespace {

// A positive, finite measurement a finished train job reported (its result.json's outputs).
double measured(const std::string& dir, const std::string& name) {
  const auto r = core::read_job_result(dir);
  if (!r || r->status != "done") {
    throw StageError(dir + ": no finished result to measure " + name + " from",
                     "budget.by time reads the matched and rate jobs' results; run them first");
  }
  if (!r->outputs.count(name)) {
    throw StageError(
        dir + "/result.json: no " + name + " (train jobs of output version 3 write it)",
        "rerun that job with this version");
  }
  const auto v = core::positive_output(*r, name);
  if (!v) {
    throw StageError(dir + "/result.json: " + name + " is '" + r->outputs.at(name) +
                     "', not a positive number");
  }
  return *v;
}

// budget.by time: the matched job's device-seconds at the rate job's tokens per device-second,
// as the paper matched TPU-core-days by measured throughput.
int64_t time_matched_tokens(const TrainJobSpec& t) {
  const double seconds = measured(t.match_seconds_of, "device_seconds");
  const double rate = measured(t.match_rate_of, "tokens_per_device_s");
  const double tokens = std::floor(seconds * rate);
  if (tokens < 1 || tokens > double(int64_t(1) << 62)) {
    throw StageError("budget.by time: " + std::to_string(seconds) + " device-seconds at " +
                     std::to_string(rate) + " tokens per device-second is no budget");
  }
  core::log_info("budget.by time: " + std::to_string(seconds) + " device-seconds (" +
                 t.match_seconds_of + ") x " + std::to_string(rate) +
                 " tokens per device-second (" + t.match_rate_of +
                 ") = " + std::to_string(int64_t(tokens)) + " tokens");
  return int64_t(tokens);
}

bool run_train_job(const SpecReader& s, const JobContext& ctx, core::JobResult& r) {
  TrainSpec t;
  read_spec(s, t);
  t.out_dir = ctx.dir;
  if (!t.match_seconds_of.empty()) t.tokens = time_matched_tokens(t);
  const DistEnv env = dist_env_from_environment();
  if (env.world_size != ctx.runtime.world_size) {
    throw StageError("the spec is for " + std::to_string(ctx.runtime.world_size) +
                         " data-parallel process(es) " + "but this job runs as " +
                         std::to_string(env.world_size),
                     "world_size is part of the job's key; launch as many ranks as it says");
  }
  t.placement = resolve_placement(ctx.runtime.device, t.precision, env.local_rank);
  DataParallel dp(env, t.placement.device);
  t.data_parallel = &dp;
  if (dp.world_size() > 1) {
    core::log_info("data parallel: rank " + std::to_string(dp.rank()) + " of " +
                   std::to_string(dp.world_size()));
  }
  if (t.placement.device != "cpu" || t.placement.bf16) {
    core::log_info("train: on " + t.placement.device +
                   (t.placement.bf16 ? " with bf16 autocast" : " in fp32"));
  }
  // metrics.jsonl for the store, an event file for TensorBoard (rank 0 alone logs).
  core::JsonlMetricSink jsonl(ctx.dir + "/" + core::kMetricsFile);
  core::TensorBoardSink events(ctx.dir);
  core::TeeMetricSink sink({&jsonl, &events});
  TrainOutcome out = train(t, sink);
  if (out.preempted) return false;
  if (!dp.is_main()) return true;  // rank 0 reports the outputs (and alone wrote the checkpoint)
  r.outputs["checkpoint"] = out.checkpoint_dir;
  if (std::isfinite(out.final_loss)) r.outputs["final_loss"] = std::to_string(out.final_loss);
  r.outputs["val_loss"] = std::to_string(out.val_loss);
  r.outputs["tokens"] = std::to_string(out.tokens);
  r.outputs["tokens_per_s"] = std::to_string(out.tokens_per_s);
  if (out.tokens_per_s > 0) {  // steady-state throughput (after warm-up), what budget.by time reads
    const double devices = double(dp.world_size());
    r.outputs["device_seconds"] = std::to_string(double(out.tokens) / out.tokens_per_s * devices);
    r.outputs["tokens_per_device_s"] = std::to_string(out.tokens_per_s / devices);
  }
  r.outputs["checkpoint_save_s"] = std::to_string(out.checkpoint_save_s);
  r.artifacts.push_back(checkpoint_artifact(out.checkpoint_dir));
  for (const auto& p : out.realised) r.mix.push_back({p.domain, p.part, p.weight, p.samples});
  return true;
}

}  // namespace

JobKind train_job_kind() {
  return {TrainJobSpec::kKind, TrainJobSpec::kOutputVersion, check_spec<TrainJobSpec>,
          run_train_job};
}

}  // namespace upcycle::stages
