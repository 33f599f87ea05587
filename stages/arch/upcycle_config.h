// The model config an upcycling method produces from a dense config (no LibTorch, so that `plan`
// and `params` can compute it without running anything).
#pragma once

#include <string>

#include "stages/arch/config.h"

namespace upcycle::stages {

/// bam: attention and FFN experts; btx: FFN experts, averaged attention; sparse: one dense model's
/// FFN sharded and copied into E·G experts (NVIDIA's sparse upcycling, Komatsuzaki's with G = 1).
enum class UpcycleMethod { kBam, kBtx, kSparse };
extern const core::EnumNames<UpcycleMethod> kUpcycleMethodNames;

/// method bam: attn_experts = ffn_experts = n (the dense models);
/// btx: ffn_experts = n (dense models plus extra seed copies), dense (averaged) attention;
/// sparse: ffn_experts = E·G with E = mixture.ffn_experts (expansion) and G =
/// mixture.ffn_granularity
///         (expert hidden = ffn_hidden / G), dense attention; `n` is ignored.
/// Routing fields are taken from `mixture`. Throws core::FieldError on an invalid result (e.g.
/// top_k above the expert count).
ModelConfig upcycled_config(UpcycleMethod method, const ModelConfig& dense,
                            const ModelConfig& mixture, int64_t n);

/// "" when dense models `a` and `b` can be experts of one MoE (every dimension and the function
/// their weights compute agree), else the first difference: "d_model: 64 vs 96". Checked at plan
/// time and again at surgery.
std::string expert_mismatch(const ModelConfig& a, const ModelConfig& b);

/// NVIDIA's weight-scaling factor for sparse upcycling (He et al. 2024 §2.3.1; Megatron-LM
/// `_get_moe_activation_scale`): with uniform routing at step 0 the MoE output is dense/scale,
/// where scale = E·G²/T for softmax_then_topk and G for topk_then_softmax.
double moe_activation_scale(const ModelConfig& moe);

}  // namespace upcycle::stages
