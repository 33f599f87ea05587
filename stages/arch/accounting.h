// Parameter accounting from a ModelConfig alone (no LibTorch): total and active parameters.
// Convention for "active" (documented in docs/accounting.md): parameters touched by one token's
// forward pass. Soft-routed attention experts are all active; top-k routed experts count k of E
// (the parameters a token's output depends on); every router that runs counts. This differs from
// the paper's BAM active figure by one router (papers.md §1.3).
#pragma once

#include <cstdint>
#include <vector>

#include "stages/arch/config.h"

namespace upcycle::stages {

struct ParamCount {
  int64_t total = 0;
  int64_t active = 0;
  int64_t embedding = 0;  ///< input embedding + untied output head
  int64_t attention = 0;  ///< all attention experts, all layers
  int64_t ffn = 0;        ///< all FFN experts, all layers
  int64_t routers = 0;
  int64_t norms = 0;
};

/// Exact parameter count of the model ModelConfig describes; equals the sum of its tensors'
/// numel().
ParamCount count_params(const ModelConfig& c);

/// Forward FLOPs per token of one layer, by BAM Table 10's formulas (2 FLOPs per multiply-add),
/// with N the attention experts that run: all E, also under top-k routing, which computes every
/// expert and zeroes all but k gates (stages/model/attention.h), so what is charged is what runs;
/// d = d_model, n_ctx the context length:
///   attention = QKV projections (6·N·d² for MHA; GQA and shared K/V count fewer K/V columns)
///             + scores 2·N·n_ctx·d + output projection 2·N·d²
///   ffn       = top_k · 3 · d · (2·F)    (BAM writes 3·topk·d·d_ff with d_ff the fused gate+up
///   width) routers   = 2·E·d per router that runs
struct LayerFlops {
  int64_t attention = 0;
  int64_t ffn = 0;
  int64_t routers = 0;
  int64_t total() const { return attention + ffn + routers; }
};

struct FlopCount {
  std::vector<LayerFlops> layers;
  int64_t head = 0;     ///< output projection, 2·d·V
  int64_t forward = 0;  ///< per token: sum of layers + head
  /// Training FLOPs per token: forward + backward = 3 x forward (the standard 6N approximation's
  /// factor), used for compute-matched budgets.
  int64_t training() const { return 3 * forward; }
};

/// FLOPs per token at context length `context` (<= 0: the model's seq_len).
FlopCount count_flops(const ModelConfig& c, int64_t context = 0);

}  // namespace upcycle::stages
