#include "stages/model/config.h"

#include <cmath>

#include <stdexcept>
#include <type_traits>

#include "core/json_integer.h"
#include "stages/model/accounting.h"

namespace upcycle::stages {
namespace {

void require(bool ok, const std::string& key, const std::string& reason) {
  if (!ok) throw std::invalid_argument(key + ": " + reason);
}

}  // namespace

void ModelConfig::validate() const {
  // Upper bounds far above any real model keep a typo (layers=2000000000) from exhausting memory.
  require(d_model > 0 && d_model <= (int64_t(1) << 20), "d_model", "must be in [1, 2^20]");
  require(layers > 0 && layers <= 4096, "layers", "must be in [1, 4096]");
  require(heads > 0 && d_model % heads == 0, "heads",
          "must divide d_model (" + std::to_string(d_model) + ")");
  require(head_dim() % 2 == 0, "heads", "head dimension d_model/heads must be even for RoPE");
  require(kv_heads > 0 && heads % kv_heads == 0, "kv_heads",
          "must divide heads (" + std::to_string(heads) + ")");
  require(ffn_hidden > 0 && ffn_hidden <= (int64_t(1) << 24), "ffn_hidden", "must be in [1, 2^24]");
  require(vocab > 0 && vocab <= (int64_t(1) << 32), "vocab", "must be in [1, 2^32]");
  require(seq_len > 0 && seq_len <= (int64_t(1) << 24), "seq_len", "must be in [1, 2^24]");
  require(std::isfinite(rope_theta) && rope_theta > 0, "rope_theta", "must be positive");
  require(norm_eps > 0 && norm_eps < 1, "norm_eps", "must be in (0, 1)");
  require(init_std > 0 && init_std < 10, "init_std", "must be in (0, 10)");
  require(block == "parallel" || block == "sequential", "block", "must be parallel or sequential");
  require(norm == "layernorm" || norm == "rmsnorm", "norm", "must be layernorm or rmsnorm");
  require(attn_experts >= 1 && attn_experts <= 4096, "attn_experts", "must be in [1, 4096]");
  require(attn_routing == "soft" || attn_routing == "top_k", "attn_routing", "must be soft or top_k");
  require(attn_top_k >= 1 && attn_top_k <= attn_experts, "attn_top_k",
          "must be in [1, attn_experts=" + std::to_string(attn_experts) + "]");
  require(attn_kv == "expert" || attn_kv == "shared", "attn_kv", "must be expert or shared");
  require(ffn_experts >= 1 && ffn_experts <= 65536, "ffn_experts", "must be in [1, 65536]");
  require(ffn_top_k >= 1 && ffn_top_k <= ffn_experts, "ffn_top_k",
          "must be in [1, ffn_experts=" + std::to_string(ffn_experts) + "]");
  require(ffn_routing == "softmax_then_topk" || ffn_routing == "topk_then_softmax", "ffn_routing",
          "must be softmax_then_topk or topk_then_softmax");
  require(moe_every >= 1, "moe_every", "must be >= 1");
  require(ffn_granularity >= 1 && ffn_hidden % ffn_granularity == 0, "ffn_granularity",
          "must divide ffn_hidden");
  require(router_init_std > 0, "router_init_std", "must be positive");
  require(lb_coef >= 0 && z_coef >= 0, lb_coef < 0 ? "lb_coef" : "z_coef", "must be >= 0");
  // Sizes are checked before anything allocates them (a bad_alloc, or a count that wraps, otherwise).
  int64_t params = 0;
  try {
    params = count_params(*this).total;
    count_flops(*this);
  } catch (const std::overflow_error& e) {
    require(false, "size", std::string(e.what()) + ": check d_model, layers, ffn_hidden, vocab and the expert counts");
  }
  require(params <= kMaxModelParams, "size",
          "the model has " + std::to_string(params) + " parameters, more than 2^42 (16 TiB in float32): check d_model, "
          "layers, ffn_hidden, vocab and the expert counts");
}

nlohmann::json to_json(const ModelConfig& c) {
  return {{"d_model", c.d_model}, {"layers", c.layers}, {"heads", c.heads},
          {"kv_heads", c.kv_heads}, {"ffn_hidden", c.ffn_hidden}, {"vocab", c.vocab},
          {"seq_len", c.seq_len}, {"block", c.block}, {"norm", c.norm},
          {"tied_embeddings", c.tied_embeddings}, {"rope_theta", c.rope_theta},
          {"norm_eps", c.norm_eps}, {"init_std", c.init_std}, {"attn_experts", c.attn_experts},
          {"attn_routing", c.attn_routing}, {"attn_top_k", c.attn_top_k}, {"attn_kv", c.attn_kv},
          {"ffn_experts", c.ffn_experts}, {"ffn_top_k", c.ffn_top_k},
          {"ffn_routing", c.ffn_routing}, {"ffn_renormalize", c.ffn_renormalize},
          {"moe_every", c.moe_every}, {"ffn_granularity", c.ffn_granularity},
          {"router_init_std", c.router_init_std}, {"lb_coef", c.lb_coef}, {"z_coef", c.z_coef}};
}

ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  nlohmann::json known = to_json(c);
  for (const auto& [k, v] : j.items()) {
    if (!known.contains(k)) throw std::invalid_argument(k + ": unknown model key");
  }
  auto get = [&](const char* key, auto& field) {
    if (!j.contains(key)) return;
    using Field = std::decay_t<decltype(field)>;
    if constexpr (std::is_integral_v<Field> && !std::is_same_v<Field, bool>) {
      if (std::string why = core::integer_problem<Field>(j.at(key)); !why.empty()) {
        throw std::invalid_argument(std::string(key) + ": " + why);
      }
    }
    try {
      j.at(key).get_to(field);
    } catch (const nlohmann::json::exception& e) {
      throw std::invalid_argument(std::string(key) + ": wrong type (" + e.what() + ")");
    }
  };
  get("d_model", c.d_model); get("layers", c.layers); get("heads", c.heads);
  get("kv_heads", c.kv_heads); get("ffn_hidden", c.ffn_hidden); get("vocab", c.vocab);
  get("seq_len", c.seq_len); get("block", c.block); get("norm", c.norm);
  get("tied_embeddings", c.tied_embeddings); get("rope_theta", c.rope_theta);
  get("norm_eps", c.norm_eps); get("init_std", c.init_std);
  get("attn_experts", c.attn_experts); get("attn_routing", c.attn_routing);
  get("attn_top_k", c.attn_top_k); get("attn_kv", c.attn_kv);
  get("ffn_experts", c.ffn_experts); get("ffn_top_k", c.ffn_top_k);
  get("ffn_routing", c.ffn_routing); get("ffn_renormalize", c.ffn_renormalize);
  get("moe_every", c.moe_every); get("ffn_granularity", c.ffn_granularity);
  get("router_init_std", c.router_init_std); get("lb_coef", c.lb_coef); get("z_coef", c.z_coef);
  return c;
}

}  // namespace upcycle::stages
