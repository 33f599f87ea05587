// Dense -> MoE weight surgery. Expert weights are stacked along a leading E dimension in the model
// (stages/model), so every method is a per-tensor rule:
//   bam:    attention expert i and FFN expert i are dense model i's; embeddings and norms averaged;
//           shared K/V (kv: shared) averaged, or taken from the first model (the seed)
//   btx:    FFN expert i is dense model i's; attention and everything else averaged
//   sparse: one dense model; its FFN cut into G shards along the hidden dimension and the set
//   repeated
//           E times (expert j holds shard j mod G; G = 1 is Komatsuzaki's plain copy), attention
//           and the rest copied. NVIDIA's virtual groups give experts g·G..g·G+G-1 (one full set of
//           shards) the same router row, so top-G picks a whole set; weight scaling undoes the
//           1/scale that routing puts on the output at step 0 (moe_activation_scale).
// Routers are new, drawn from N(0, router_init_std^2) with the given seed.
#pragma once

#include <string>
#include <vector>

#include "stages/arch/config.h"
#include "stages/io/safetensors.h"
#include "stages/spec/upcycle.h"

namespace upcycle::stages {

struct UpcycleResult {
  ModelConfig config;
  TensorMap state;
};

/// Builds the MoE weights. Throws StageError when inputs are not dense, their shapes differ (naming
/// both checkpoints and the key), or the method/expert count is inconsistent.
UpcycleResult upcycle_dense(const UpcycleSpec& spec);

}  // namespace upcycle::stages
