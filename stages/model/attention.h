// Mixture-of-Attention (BAM): E full multi-head attention experts over the same sequence, mixed per
// token by a router. E = 1 is ordinary (dense) attention with no router. Expert weights are stacked
// along a leading E dimension so that upcycling is a stack of dense weights (stages/upcycle).
//   routing soft:  y = sum_e softmax(W_r x)_e * MHA_e(x)            (BAM's default)
//   routing top_k: the gate keeps the k largest, renormalised        (BAM Table 6 ablation)
//   kv expert: each expert owns W_k, W_v;  kv shared: one W_k, W_v for all experts.
// Shapes: B batch, T time, D d_model, E experts, H heads, G kv heads, C head_dim.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "stages/model/config.h"
#include "stages/model/layers.h"

namespace upcycle::stages {

class MixtureOfAttentionImpl : public torch::nn::Module {
 public:
  explicit MixtureOfAttentionImpl(const ModelConfig& c);
  /// h [B, T, D] -> [B, T, D]. Causal. `gates_BTE` (if non-null) receives the routing weights.
  at::Tensor forward(const at::Tensor& h_BTD, const RopeTables& rope, at::Tensor* gates_BTE = nullptr);

  ModelConfig config;
  at::Tensor wq_EHD;  ///< [E, H*C, D]
  at::Tensor wk_EGD;  ///< [E or 1, G*C, D]
  at::Tensor wv_EGD;  ///< [E or 1, G*C, D]
  at::Tensor wo_EDH;  ///< [E, D, H*C]
  at::Tensor router_ED;  ///< [E, D]; undefined when E = 1

 private:
  at::Tensor dense_forward(const at::Tensor& h_BTD, const RopeTables& rope);
};
TORCH_MODULE(MixtureOfAttention);

}  // namespace upcycle::stages
