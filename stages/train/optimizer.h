// The optimizer step of the trainer, behind one interface for the data-parallel layouts of
// `train.zero` (memory per parameter: docs/scale.md, stages/arch/memory.h):
//   0  replicated: every rank holds all gradients and AdamW moments; gradients are averaged by
//      all-reduce in buckets while backward runs (distributed.h).
//   1  ZeRO-1: each rank holds the AdamW moments of its 1/d of every gradient bucket; gradients
//      accumulate in one flat buffer per bucket, are reduce-scattered, the rank updates its shard
//      of the weights and all-gathers them (zero.cpp).
//   2  ZeRO-2: as 1, and gradients are reduce-scattered bucket by bucket during every
//      micro-batch's backward, so a rank keeps only its shard of them.
// With fp32 weights (the CPU, and zero: 0) the weights are their own master copy. Under bf16
// precision with zero: 1 or 2 the weights themselves become bf16, as under Megatron-LM's
// distributed optimizer: each rank keeps the fp32 master copy of its shard beside its moments,
// gradients accumulate in fp32, and the updated shard is all-gathered into the bf16 weights. Bytes
// per parameter at d ranks (stages/arch/memory.h): zero: 1 6 + 12/d, zero: 2 2 + 16/d.
// For checkpoints every
// layout hands out the AdamW moments it holds as slices (ranges of one parameter's flattened
// elements) and takes back the ranges it needs, whoever wrote them: a checkpoint resumes under any
// layout and any number of ranks (stages/io/checkpoint_shards.h).
#pragma once

#include <ATen/Tensor.h>
#include <torch/optim/adamw.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "stages/spec/train.h"
#include "stages/train/distributed.h"

namespace upcycle::stages {

/// Flat elements [lo, lo + numel) of parameter `param`'s AdamW moments (views of the state).
struct MomentSlice {
  size_t param = 0;  ///< an index into the optimizer's parameters
  int64_t lo = 0;
  at::Tensor exp_avg, exp_avg_sq;
  at::Tensor master;  ///< the fp32 master weights of the range (bf16 weights), else undefined
  int64_t step = 0;   ///< AdamW's step count for the parameter (bias correction)
};

/// A checkpoint's AdamW state, as load reads it.
struct MomentSource {
  /// Elements [lo, lo + n) of parameter `param`'s moment (0: exp_avg, 1: exp_avg_sq) or fp32
  /// master weights (2): fp32 on the CPU, undefined when the checkpoint has none for it.
  std::function<at::Tensor(size_t param, int moment, int64_t lo, int64_t n)> read;
  /// The parameter's step count.
  std::function<int64_t(size_t param)> step;
};

class StepOptimizer {
 public:
  virtual ~StepOptimizer() = default;
  /// Before a step's first micro-batch.
  virtual void zero_grad() = 0;
  /// Before the step's last micro-batch's backward.
  virtual void before_last_backward() {}
  /// After each micro-batch's backward.
  virtual void after_backward() {}
  /// Averages the gradients over the ranks, clips them to `grad_clip` (0: no clipping) and takes
  /// the AdamW step at `lr`. Returns the gradient norm before clipping, a scalar on the device.
  virtual at::Tensor step(double lr, double grad_clip) = 0;
  /// This rank's share of the AdamW state, for its checkpoint shard: together the ranks' slices
  /// cover every parameter that has state once. Not collective.
  virtual std::vector<MomentSlice> state_slices() = 0;
  /// Restores the state of a checkpoint (any layout, any number of ranks) onto the weights'
  /// device, reading the ranges this rank holds. fp32 master weights in the checkpoint replace
  /// the weights the model was loaded with (the weight files hold them rounded to bf16).
  virtual void load(const MomentSource& source) = 0;
  /// Bytes of optimizer state (moments) this rank holds, for the log.
  virtual int64_t state_bytes() const = 0;
};

/// The parameters that train (requires_grad), in registration order.
std::vector<at::Tensor> trained_parameters(const std::vector<at::Tensor>& params);

/// AdamW over `params` with weight decay on matrices only (norms, 1-D, are not decayed): the
/// decayed group, then the others. Every layout's state file is this optimizer's.
std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<at::Tensor>& params,
                                                const OptimSpec& o);

/// The layout `zero` says; `bucket_bytes` cuts gradients into buckets (ZeRO: also the shards).
/// `bf16_weights` (zero 1 or 2 only) turns the weights into bf16 with fp32 masters in the
/// optimizer; it must be built while the weights are still fp32.
std::unique_ptr<StepOptimizer> make_step_optimizer(const std::vector<at::Tensor>& params,
                                                   const OptimSpec& o, DataParallel& dp,
                                                   int64_t zero, int64_t bucket_bytes,
                                                   bool bf16_weights = false);

/// ZeRO-1/2 (zero.cpp).
std::unique_ptr<StepOptimizer> make_sharded_adamw(const std::vector<at::Tensor>& params,
                                                  const OptimSpec& o, DataParallel& dp,
                                                  int64_t zero, int64_t bucket_bytes,
                                                  bool bf16_weights);

/// The weights from the checkpoint's fp32 masters, where it has them (whole parameters).
void restore_master_weights(const std::vector<at::Tensor>& params, const MomentSource& source);

}  // namespace upcycle::stages
