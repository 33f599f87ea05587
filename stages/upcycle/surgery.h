// Dense -> MoE weight surgery. Expert weights are stacked along a leading E dimension in the model
// (stages/model), so every method is a per-tensor rule:
//   bam:    attention expert i and FFN expert i are dense model i's; embeddings and norms averaged;
//           shared K/V (kv: shared) averaged, or taken from the first model (the seed)
//   btx:    FFN expert i is dense model i's; attention and everything else averaged
//   sparse: one dense model; its FFN cut into G shards along the hidden dimension and the set repeated
//           E times (expert j holds shard j mod G; G = 1 is Komatsuzaki's plain copy), attention and
//           the rest copied. NVIDIA's virtual groups give experts g·G..g·G+G-1 (one full set of shards)
//           the same router row, so top-G picks a whole set; weight scaling undoes the 1/scale that
//           routing puts on the output at step 0 (moe_activation_scale).
// Routers are new, drawn from N(0, router_init_std^2) with the given seed.
#pragma once

#include <string>
#include <vector>

#include "stages/io/safetensors.h"
#include "stages/model/config.h"

namespace upcycle::stages {

struct UpcycleSpec {
  std::string method = "bam";       ///< bam | btx | sparse
  std::vector<std::string> inputs;  ///< dense checkpoint dirs; expert i comes from inputs[i]
  ModelConfig mixture;              ///< routing fields (attn_*, ffn_*, router_init_std, coefs) to use
  std::string shared_kv_init = "average";  ///< average | first
  std::vector<double> average_weights;     ///< for averaged tensors; empty = uniform
  int64_t extra_seed_experts = 0;  ///< btx: FFN experts copied from inputs[0] (the seed), BAM Tables 4-5
  bool virtual_groups = true;      ///< sparse: NVIDIA's virtual-group router initialisation
  /// sparse: "all" multiplies W1, W3 and W2 of every expert by scale^(1/3) (Megatron-LM, the paper);
  /// "w2" multiplies W2 alone by scale (exact at step 0 under uniform routing); "none".
  std::string weight_scaling = "all";
  uint64_t seed = 0;
};

struct UpcycleResult {
  ModelConfig config;
  TensorMap state;
};

/// Builds the MoE weights. Throws StageError when inputs are not dense, their shapes differ (naming
/// both checkpoints and the key), or the method/expert count is inconsistent.
UpcycleResult upcycle_dense(const UpcycleSpec& spec);

}  // namespace upcycle::stages
