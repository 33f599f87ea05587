// The memory model: what one data-parallel rank of a training job holds at its peak, term by term,
// from the model's shape and the training layout alone (no LibTorch), for `upcycle plan --cost`
// (which refuses what does not fit `cost.gpu`) and the trainer's `memory/estimate_bytes`, and
// checked against the trainer's measured `memory/peak_bytes` (docs/scale.md explains each term and
// the table of estimate against measurement). P is the parameter count, d the data-parallel ranks,
// N the tokens of one micro-batch, V the vocabulary.
//   weights      4P: fp32 parameters (their own master copy); 2P under bf16 with zero 1 or 2
//                (bf16_weights: the fp32 masters are in the optimizer's shard)
//   casts        2P under bf16 autocast of fp32 weights: the bf16 copies of the weights, cached
//                for forward and kept for backward
//   gradients    zero 0: 4P (.grad), plus 4P of all-reduce buckets when d > 1; zero 1: 4P in the
//                flat fp32 per-bucket buffers; zero 2: 4P/d, the rank's shard, plus a bucket in
//                flight
//   optimizer    AdamW moments: 8P, or 8P/d under ZeRO, plus 4P/d of fp32 masters with bf16
//                weights. Per parameter: zero 1 8 + 8/d (bf16: 6 + 12/d, Megatron-LM's
//                distributed optimizer), zero 2 4 + 12/d (bf16: 2 + 16/d)
//   activations  what backward needs of each block at micro-batch N (per-op counts in memory.cpp);
//                with `checkpoint_activations: block`, each block's input only, plus one block's
//                full activations while it is recomputed
//   loss         the fused chunked head: dL/dh (N x D) and dL/dW_head (V x D, fp32) kept from
//                forward to backward, and one chunk's logits (chunk x V) and its temporaries
//   validation   a no-grad forward at micro-batch N: a block's working set and one chunk's logits
// The peak is the persistent terms plus the largest of the forward-backward working set (walked
// block by block through backward, with gradients appearing as activations are freed) and the
// validation pass.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stages/arch/config.h"

namespace upcycle::stages {

/// The chunk of tokens of the fused head + loss when `train.loss_chunk_tokens` is 0: the largest
/// power of two whose fp32 logits stay within 64 Mi elements (256 MiB), at least 1 (V = 256k:
/// 256 tokens; V = 4096: 16384).
int64_t default_loss_chunk(int64_t vocab);

/// How a training job runs, as far as memory goes.
/// Whether training keeps the weights in bf16 with fp32 masters in the optimizer (as Megatron-LM's
/// distributed optimizer does): under bf16 precision with the sharded optimizer (train.zero 1, 2).
inline bool bf16_weights(bool bf16, int64_t zero) { return bf16 && zero >= 1; }

struct MemoryPlan {
  int64_t micro_batch = 1;  ///< sequences per forward on one rank
  int64_t world = 1;        ///< data-parallel ranks
  int64_t zero = 0;         ///< 0, 1, 2 (stages/train/optimizer.h)
  Recompute recompute = Recompute::kNone;
  int64_t loss_chunk_tokens = 0;  ///< 0 = default_loss_chunk(V)
  bool bf16 = false;              ///< autocast
  bool cuda = false;
  int64_t eval_windows = 8;
  int64_t bucket_bytes = 25 << 20;  ///< gradient buckets (UPCYCLE_DDP_BUCKET_KB)
};

struct MemoryTerm {
  std::string name;  ///< weights, casts, gradients, buckets, optimizer, activations, loss, ...
  int64_t bytes = 0;
};

struct MemoryEstimate {
  std::vector<MemoryTerm> persistent;  ///< held from the first step to the last
  std::vector<MemoryTerm> working;     ///< the peak phase's terms (forward-backward or validation)
  std::string peak_phase;              ///< "backward" or "validation"
  int64_t peak = 0;                    ///< the sum of both lists
  /// The terms of both lists, largest first.
  std::vector<MemoryTerm> largest() const;
};

MemoryEstimate estimate_memory(const ModelConfig& c, const MemoryPlan& p);

/// An upcycle (surgery) job's peak: the fp32 weights of its `sources` dense models, the mixture
/// model twice (the fresh module whose routers it keeps, and the state it fills tensor by tensor),
/// and the largest tensor once more in flight (an average's accumulator). Checked against the
/// measured peak by the rehearsal (docs/scale.md).
MemoryEstimate estimate_surgery_memory(const ModelConfig& dense, int64_t sources,
                                       const ModelConfig& moe);

/// Windows per forward pass of the eval job's perplexity (stages/eval/perplexity.h).
inline constexpr int64_t kEvalBatchWindows = 8;

/// An eval job's peak over its groups of models held at once (one model, or a BTM ensemble's
/// members): their fp32 weights, plus the larger of loading the last one (its state beside its
/// module, and one transient of the largest tensor) and a no-grad forward of kEvalBatchWindows
/// windows (at most `max_windows`, 0 = no cap) with its full logits and their log-softmax.
MemoryEstimate estimate_eval_memory(const std::vector<std::vector<ModelConfig>>& groups,
                                    int64_t max_windows);

/// "12.3 GiB at backward: weights 4.1 GiB, optimizer 8.2 GiB, ..." (largest terms first).
std::string describe_memory(const MemoryEstimate& e, size_t terms = 4);

/// Bytes as "1.5 GiB" / "300 MiB".
std::string format_bytes(double bytes);

}  // namespace upcycle::stages
