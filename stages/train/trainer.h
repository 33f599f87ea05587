// The one trainer every training stage uses (seed pretraining, branch experts, MoE continued training,
// the dense baseline): AdamW, warmup + cosine, gradient clipping and accumulation, mixture sampling,
// MoE aux losses, metrics.jsonl, periodic validation and checkpoints, SIGTERM/SIGUSR2 preemption.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "core/metric_sink.h"
#include "stages/model/config.h"
#include "stages/train/device.h"
#include "stages/train/distributed.h"

namespace upcycle::stages {

struct OptimSpec {
  double lr = 1e-3;
  double min_lr_ratio = 0.1;
  int64_t warmup = 0;  ///< optimizer steps
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  ///< max global grad norm; 0 disables
};

struct TrainSpec {
  ModelConfig model;            ///< used when init_checkpoint is empty (fresh init)
  std::string init_checkpoint;  ///< continue from these weights (branch, MoE training, dense baseline)
  std::string data_dir;
  std::map<std::string, double> mix;  ///< domain -> weight
  int64_t tokens = 0;           ///< token budget; steps = ceil(tokens / tokens per step)
  int64_t batch_size = 8;       ///< sequences per optimizer step (global)
  int64_t micro_batch = 0;      ///< sequences per forward; 0 = batch_size (no accumulation)
  OptimSpec optim;
  uint64_t seed = 0;
  int64_t log_every = 10;
  int64_t eval_every = 0;       ///< validation every N steps; 0 = only at the end
  int64_t eval_windows = 8;     ///< validation windows per domain
  int64_t checkpoint_every = 0; ///< 0 = only at the end
  std::string out_dir;          ///< the job directory; checkpoints go to OUT/checkpoint, and one found
                                ///< there (a preempted attempt) is resumed exactly
  int64_t stop_after_steps = 0; ///< tests: behave as if preempted after this step (0 = never)
  DataParallel* data_parallel = nullptr;  ///< several processes share the global batch; null = one
  Placement placement;          ///< device and bf16 autocast (device.h); weights stay fp32
};

struct TrainOutcome {
  bool preempted = false;
  int64_t steps = 0;
  int64_t tokens = 0;
  double final_loss = 0;
  double val_loss = 0;
  double tokens_per_s = 0;
  std::string checkpoint_dir;
};

/// Trains and writes OUT/checkpoint (weights, AdamW state, step). A run stopped at any step and
/// resumed gives the same loss sequence as an uninterrupted one, bit for bit on CPU with the same
/// threads. A checkpoint written on one device resumes on another. Throws StageError on bad inputs or a non-finite loss.
TrainOutcome train(const TrainSpec& spec, core::MetricSink& sink);

}  // namespace upcycle::stages
