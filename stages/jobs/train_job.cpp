// The train job: the trainer (train/trainer.h) on a TrainJobSpec, data parallel when launched as
// several ranks.
#include <cmath>

#include "core/log.h"
#include "core/metric_sink.h"
#include "stages/jobs/job_kinds.h"
#include "stages/spec/train.h"
#include "stages/train/trainer.h"

namespace upcycle::stages {
namespace {

bool run_train_job(const SpecReader& s, const JobContext& ctx, core::JobResult& r) {
  TrainSpec t;
  read_spec(s, t);
  t.out_dir = ctx.dir;
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
  core::JsonlMetricSink sink(ctx.dir + "/" + core::kMetricsFile);
  TrainOutcome out = train(t, sink);
  if (out.preempted) return false;
  if (!dp.is_main()) return true;  // rank 0 reports the outputs (and alone wrote the checkpoint)
  r.outputs["checkpoint"] = out.checkpoint_dir;
  if (std::isfinite(out.final_loss)) r.outputs["final_loss"] = std::to_string(out.final_loss);
  r.outputs["val_loss"] = std::to_string(out.val_loss);
  r.outputs["tokens"] = std::to_string(out.tokens);
  r.outputs["tokens_per_s"] = std::to_string(out.tokens_per_s);
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
