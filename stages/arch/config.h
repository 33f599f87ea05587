// ModelConfig: every knob of the decoder LM, dense or mixture. Plain data, no LibTorch, so the
// runner and the accounting can use it without compiling torch. A dense model is attn_experts =
// ffn_experts = 1.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "core/fields.h"

namespace upcycle::stages {

/// parallel: one norm feeds attention and FFN (BAM, PaLM); sequential: attention, then FFN (Llama).
enum class BlockType { kParallel, kSequential };
/// layernorm: weight only, no bias (as BAM Table 9 counts); rmsnorm.
enum class Norm { kLayerNorm, kRmsNorm };
/// How a token's attention experts are chosen: soft (every expert, softmax gate; BAM) or top_k.
enum class AttnRouting { kSoft, kTopK };
/// expert: each attention expert has its own W_k, W_v; shared: one W_k, W_v for all experts.
enum class KvMode { kExpert, kShared };
/// The MoE FFN router: softmax over all experts, then top-k; or top-k logits, then softmax
/// (Mixtral).
enum class FfnRouting { kSoftmaxThenTopK, kTopKThenSoftmax };

/// RoPE frequencies: none (theta^(-2i/C)), or llama3 (Llama 3.1's: wavelengths longer than
/// original_context / low_freq_factor divided by `factor`, shorter than original_context /
/// high_freq_factor kept, those between interpolated smoothly).
enum class RopeScaling { kNone, kLlama3 };

/// Activation checkpointing in training (a trainer setting, not the model's; here so that the
/// model, the trainer and the memory model share it): none keeps every block's activations for
/// backward; block keeps only each block's input and recomputes the block in backward; selective
/// recomputes each block's FFN (its widest activations: the routed tokens' SwiGLU hidden states)
/// and keeps the attention's.
enum class Recompute { kNone, kBlock, kSelective };

extern const core::EnumNames<BlockType> kBlockNames;
extern const core::EnumNames<Recompute> kRecomputeNames;
extern const core::EnumNames<Norm> kNormNames;
extern const core::EnumNames<AttnRouting> kAttnRoutingNames;
extern const core::EnumNames<KvMode> kKvModeNames;
extern const core::EnumNames<FfnRouting> kFfnRoutingNames;
extern const core::EnumNames<RopeScaling> kRopeScalingNames;

/// The most parameters a model may have (4.4 trillion; 16 TiB in float32): past it no machine holds
/// it.
inline constexpr int64_t kMaxModelParams = int64_t(1) << 42;

struct ModelConfig {
  int64_t d_model = 64;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 4;      ///< GQA when < heads; must divide heads
  int64_t ffn_hidden = 128;  ///< SwiGLU hidden size of one dense FFN
  int64_t vocab = 512;
  int64_t seq_len = 64;
  BlockType block = BlockType::kParallel;
  Norm norm = Norm::kLayerNorm;
  bool tied_embeddings = false;
  bool qkv_bias = false;  ///< biases on the q, k and v projections (Qwen2); none on o
  double rope_theta = 10000.0;
  RopeScaling rope_scaling = RopeScaling::kNone;
  double rope_factor = 8.0;              ///< llama3: how much longer the new context is
  double rope_low_freq_factor = 1.0;     ///< llama3
  double rope_high_freq_factor = 4.0;    ///< llama3
  int64_t rope_original_context = 8192;  ///< llama3: the context the frequencies were trained at
  double norm_eps = 1e-5;
  double init_std = 0.02;

  // Mixture-of-Attention (BAM). 1 = dense attention.
  int64_t attn_experts = 1;
  AttnRouting attn_routing = AttnRouting::kSoft;
  int64_t attn_top_k = 1;
  KvMode attn_kv = KvMode::kExpert;

  // MoE FFN. 1 = dense FFN.
  int64_t ffn_experts = 1;
  int64_t ffn_top_k = 1;
  FfnRouting ffn_routing = FfnRouting::kSoftmaxThenTopK;
  bool ffn_renormalize = false;  ///< renormalise the top-k probabilities to sum to 1
  int64_t moe_every = 1;        ///< MoE FFN in layers l with (l + 1) % moe_every == 0; others dense
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

  /// Throws core::FieldError naming the first field out of range or inconsistent; "size" when the
  /// model would have more than kMaxModelParams parameters.
  void validate() const;
};

/// Every field of ModelConfig, declared once: the recipe's `model:` keys (the dense ones; the
/// mixture fields are set by upcycle stages), config.json, ranges and the docs' key table.
const core::Fields<ModelConfig>& model_fields();

nlohmann::json to_json(const ModelConfig& c);
/// Reads every field present; absent fields keep their defaults. Unknown keys and bad values throw
/// core::FieldError naming the key, so a typo in a checkpoint config is caught.
ModelConfig model_config_from_json(const nlohmann::json& j);

}  // namespace upcycle::stages
