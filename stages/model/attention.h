// Mixture-of-Attention (BAM): E full multi-head attention experts over the same sequence, mixed per
// token by a router. E = 1 is ordinary (dense) attention with no router. Expert weights are stacked
// along a leading E dimension so that upcycling is a stack of dense weights (stages/upcycle).
//   routing soft:  y = sum_e softmax(W_r x)_e * MHA_e(x)            (BAM's default)
//   routing top_k: the gate keeps the k largest, renormalised        (BAM Table 6 ablation)
//   kv expert: each expert owns W_k, W_v;  kv shared: one W_k, W_v for all experts.
// Incremental decoding: with a LayerKvCache the new positions' keys and values are appended to the
// cached ones and the queries (the last T positions) attend to all of them, causally, or as the
// cache's `allowed_BTK` says when rows are left-padded. The cache holds
// K after RoPE and both before GQA expansion, per K/V copy: [Ekv*B, G, T, C] (Ekv = E, or 1 for
// shared KV). Top-k routing computes all E experts and zeroes the gates of the others
// (docs/accounting.md charges all E): with expert K/V every expert's keys are needed at every
// position anyway. Shapes: B batch, T time, D d_model, E experts, H heads, G kv heads, C head_dim.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "stages/arch/config.h"
#include "stages/model/layers.h"

namespace upcycle::stages {

/// One layer's keys and values of the positions seen so far (undefined before the first forward).
struct LayerKvCache {
  at::Tensor k_XGTC, v_XGTC;
  /// For this forward only, when the batch's rows are left-padded (TransformerLm sets it): which
  /// keys each query may see, [B, T, past + T]; undefined = plain causal.
  at::Tensor allowed_BTK;
};

class MixtureOfAttentionImpl : public torch::nn::Module {
 public:
  explicit MixtureOfAttentionImpl(const ModelConfig& c);
  /// h [B, T, D] -> [B, T, D]. Causal. `gates_BTE` (if non-null) receives the routing weights. With
  /// `kv`, h holds the positions after the cached ones and `rope` their tables; `kv` grows by T.
  at::Tensor forward(const at::Tensor& h_BTD, const RopeTables& rope,
                     at::Tensor* gates_BTE = nullptr, LayerKvCache* kv = nullptr);

  ModelConfig config;
  at::Tensor wq_EHD;     ///< [E, H*C, D]
  at::Tensor wk_EGD;     ///< [E or 1, G*C, D]
  at::Tensor wv_EGD;     ///< [E or 1, G*C, D]
  at::Tensor wo_EDH;     ///< [E, D, H*C]
  at::Tensor router_ED;  ///< [E, D]; undefined when E = 1
  /// q/k/v biases (qkv_bias, Qwen2), flat: [E*H*C], [(E or 1)*G*C] twice; undefined without.
  /// One-dimensional, so weight decay passes over them as over the norms (optimizer.cpp).
  at::Tensor bq_X, bk_X, bv_X;

 private:
  at::Tensor dense_forward(const at::Tensor& h_BTD, const RopeTables& rope, LayerKvCache* kv);
};
TORCH_MODULE(MixtureOfAttention);

}  // namespace upcycle::stages
