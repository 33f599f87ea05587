#include "stages/upcycle/upcycle_config.h"

#include <stdexcept>

namespace upcycle::stages {

ModelConfig upcycled_config(const std::string& method, const ModelConfig& dense,
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
  if (method == "bam") {
    c.attn_experts = n;
    c.ffn_experts = n;
  } else if (method == "btx") {
    c.attn_experts = 1;
    c.attn_kv = "expert";
    c.ffn_experts = n;
  } else if (method == "sparse") {
    c.attn_experts = 1;
    c.ffn_experts = mixture.ffn_experts;
  } else {
    throw std::invalid_argument("method: unknown upcycling method '" + method +
                                "' (expected bam, btx or sparse)");
  }
  c.validate();
  return c;
}

}  // namespace upcycle::stages
