// Mixture-of-Experts SwiGLU FFN with token-choice top-k routing. E = 1 is the dense FFN (no router).
// Expert weights are stacked along a leading E dimension (upcycling stacks dense weights).
// Forward steps: router logits -> probabilities -> top-k -> sort the (token, expert) pairs by expert ->
// one matmul chain per expert on its gathered tokens -> weighted index_add back into the output.
//   softmax_then_topk: p = softmax(logits), keep the top-k p (optionally renormalised)  (BAM, NVIDIA)
//   topk_then_softmax: keep the top-k logits, softmax over them                          (BTX, Mixtral)
// Shapes: N tokens (B*T), D d_model, E experts, K top_k, F expert hidden.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "stages/model/config.h"

namespace upcycle::stages {

/// Router statistics of one forward of one block, for the trainer, eval and the store.
struct RouterStats {
  at::Tensor load_balance;  ///< scalar: E * sum_i f_i P_i (Switch); 0 for a dense FFN
  at::Tensor z_loss;        ///< scalar: mean over tokens of logsumexp(logits)^2 (ST-MoE)
  at::Tensor util_E;        ///< fraction of routed (token, slot) pairs per expert, detached
  at::Tensor attn_gate_E;   ///< the attention router's mean gate per expert, detached; undefined
                            ///< for dense attention (filled by the block, not the FFN)
};

class MoeFfnImpl : public torch::nn::Module {
 public:
  MoeFfnImpl(const ModelConfig& c, int64_t experts);
  /// h [B, T, D] -> [B, T, D]; fills `stats` when non-null.
  at::Tensor forward(const at::Tensor& h_BTD, RouterStats* stats = nullptr);

  ModelConfig config;
  int64_t experts;
  at::Tensor w1_EFD;     ///< [E, F, D] gate projection
  at::Tensor w3_EFD;     ///< [E, F, D] up projection
  at::Tensor w2_EDF;     ///< [E, D, F] down projection
  at::Tensor router_ED;  ///< [E, D]; undefined when E = 1
};
TORCH_MODULE(MoeFfn);

}  // namespace upcycle::stages
