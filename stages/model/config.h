// ModelConfig: every knob of the decoder LM, dense or mixture. Plain data, no LibTorch, so the runner
// and the accounting can use it without compiling torch. A dense model is attn_experts = ffn_experts = 1.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

namespace upcycle::stages {

/// The most parameters a model may have (4.4 trillion; 16 TiB in float32): past it no machine holds it.
inline constexpr int64_t kMaxModelParams = int64_t(1) << 42;

struct ModelConfig {
  int64_t d_model = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 4;      ///< GQA when < heads; must divide heads
  int64_t ffn_hidden = 128;  ///< SwiGLU hidden size of one dense FFN
  int64_t vocab = 512;
  int64_t seq_len = 64;
  std::string block = "parallel";  ///< parallel (one norm feeds attention and FFN) | sequential
  std::string norm = "layernorm";  ///< layernorm (weight only, no bias) | rmsnorm
  bool tied_embeddings = false;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;

  // Mixture-of-Attention (BAM). 1 = dense attention.
  int64_t attn_experts = 1;
  std::string attn_routing = "soft";  ///< soft (every expert, softmax gate) | top_k
  int64_t attn_top_k = 1;
  std::string attn_kv = "expert";  ///< expert (own W_k, W_v) | shared (one W_k, W_v for all experts)

  // MoE FFN. 1 = dense FFN.
  int64_t ffn_experts = 1;
  int64_t ffn_top_k = 1;
  std::string ffn_routing = "softmax_then_topk";  ///< softmax_then_topk | topk_then_softmax
  bool ffn_renormalize = false;                   ///< renormalise the top-k probabilities to sum to 1
  int64_t moe_every = 1;  ///< MoE FFN in layers l with (l + 1) % moe_every == 0; others dense
  int64_t ffn_granularity = 1;  ///< G: expert hidden = ffn_hidden / G (fine-grained experts)

  double router_init_std = 0.02;
  double lb_coef = 0.01;  ///< Switch load-balancing loss coefficient (alpha)
  double z_coef = 0.001;  ///< router z-loss coefficient (beta)

  int64_t head_dim() const { return d_model / heads; }
  int64_t expert_hidden() const { return ffn_hidden / ffn_granularity; }
  /// Experts in the FFN of layer `l` (1 in the dense layers of an every-other-layer MoE).
  int64_t ffn_experts_in_layer(int64_t l) const {
    return (ffn_experts > 1 && (l + 1) % moe_every == 0) ? ffn_experts : 1;
  }
  bool is_dense() const { return attn_experts == 1 && ffn_experts == 1; }

  /// Throws std::invalid_argument with "key: reason" for the first inconsistent field; "size: ..." when
  /// the model would have more than kMaxModelParams parameters.
  void validate() const;
};

nlohmann::json to_json(const ModelConfig& c);
/// Reads every field present; absent fields keep their defaults. Unknown keys throw
/// std::invalid_argument naming the key, so a typo in a checkpoint config is caught.
ModelConfig model_config_from_json(const nlohmann::json& j);

}  // namespace upcycle::stages
