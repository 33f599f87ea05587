#include "stages/arch/upcycle_config.h"

#include <stdexcept>

namespace upcycle::stages {

const core::EnumNames<UpcycleMethod> kUpcycleMethodNames = {
    {UpcycleMethod::kBam, "bam"}, {UpcycleMethod::kBtx, "btx"}, {UpcycleMethod::kSparse, "sparse"}};

std::string expert_mismatch(const ModelConfig& a, const ModelConfig& b) {
  const nlohmann::json ja = to_json(a), jb = to_json(b);
  for (const char* key :
       {"d_model", "layers", "heads", "kv_heads", "ffn_hidden", "vocab", "seq_len", "block", "norm",
        "tied_embeddings", "qkv_bias", "rope_theta", "rope_scaling", "rope_factor",
        "rope_low_freq_factor", "rope_high_freq_factor", "rope_original_context", "norm_eps"}) {
    // Fields at their default may be absent (core::kOmitDefault): the default then.
    const nlohmann::json va = ja.value(key, nlohmann::json()), vb = jb.value(key, nlohmann::json());
    if (va != vb) return std::string(key) + ": " + va.dump() + " vs " + vb.dump();
  }
  return "";
}

ModelConfig upcycled_config(UpcycleMethod method, const ModelConfig& dense,
                            const ModelConfig& mixture, int64_t n) {
  ModelConfig c = dense;
  c.attn_routing = mixture.attn_routing;
  c.attn_top_k = mixture.attn_top_k;
  c.attn_kv = mixture.attn_kv;
  c.ffn_top_k = mixture.ffn_top_k;
  c.ffn_routing = mixture.ffn_routing;
  c.ffn_renormalize = mixture.ffn_renormalize;
  c.router_init_std = mixture.router_init_std;
  c.lb_coef = mixture.lb_coef;
  c.z_coef = mixture.z_coef;
  c.moe_every = mixture.moe_every;
  switch (method) {
    case UpcycleMethod::kBam:
      c.attn_experts = n;
      c.ffn_experts = n;
      break;
    case UpcycleMethod::kBtx:
      c.attn_experts = 1;
      c.attn_kv = KvMode::kExpert;
      c.ffn_experts = n;
      break;
    case UpcycleMethod::kSparse:
      if (mixture.ffn_experts < 1) throw core::FieldError("experts", "must be >= 1");
      c.attn_experts = 1;
      c.ffn_granularity = mixture.ffn_granularity;
      c.ffn_experts = mixture.ffn_experts * mixture.ffn_granularity;
      break;
  }
  c.validate();
  return c;
}

double moe_activation_scale(const ModelConfig& moe) {
  const double E = double(moe.ffn_experts) / double(moe.ffn_granularity),
               G = double(moe.ffn_granularity);
  return moe.ffn_routing == FfnRouting::kSoftmaxThenTopK ? E * G * G / double(moe.ffn_top_k) : G;
}

}  // namespace upcycle::stages
