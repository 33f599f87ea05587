// The one trainer every training stage uses (seed pretraining, branch experts, MoE continued
// training, the dense baseline): AdamW, warmup + cosine, gradient clipping and accumulation,
// mixture sampling, MoE aux losses, metrics.jsonl, periodic validation and checkpoints,
// SIGTERM/SIGUSR2 preemption.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/metric_sink.h"
#include "stages/arch/config.h"
#include "stages/data/domain_tokens.h"
#include "stages/spec/train.h"
#include "stages/train/device.h"
#include "stages/train/distributed.h"

namespace upcycle::stages {

/// A train job's spec (spec/train.h: model or init checkpoint, data, mixture, budget, settings) and
/// what only the running process has.
struct TrainSpec : TrainJobSpec {
  std::string out_dir;  ///< the job directory; checkpoints go to OUT/checkpoint, and one found
                        ///< there (a preempted attempt) is resumed exactly
  int64_t stop_after_steps = 0;  ///< tests: behave as if preempted after this step (0 = never)
  DataParallel* data_parallel = nullptr;  ///< several processes share the global batch; null = one
  Placement placement;  ///< device and bf16 autocast (device.h); weights stay fp32
};

struct TrainOutcome {
  bool preempted = false;
  int64_t steps = 0;
  int64_t tokens = 0;
  double final_loss = 0;
  double val_loss = 0;
  double tokens_per_s = 0;
  double checkpoint_save_s = 0;  ///< the slowest checkpoint save of this attempt (slowest rank)
  std::string checkpoint_dir;
  std::vector<RealisedPart> realised;  ///< rank 0: the samples consumed, by domain and file
};

/// Trains and writes OUT/checkpoint (weights, AdamW state, step). A run stopped at any step and
/// resumed gives the same loss sequence as an uninterrupted one, bit for bit on CPU with the same
/// threads. A checkpoint written on one device resumes on another. Throws StageError on bad inputs
/// or a non-finite loss.
TrainOutcome train(const TrainSpec& spec, core::MetricSink& sink);

}  // namespace upcycle::stages
