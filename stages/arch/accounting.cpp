#include "stages/arch/accounting.h"

#include <stdexcept>
#include <string>

namespace upcycle::stages {
namespace {

// Counts are summed in 128 bits, where no validated config can overflow (the largest products are
// near 2^90), and narrowed with a check: a count past 2^63 is an error, never a wrap.
using Wide = __int128;

int64_t narrow(Wide v, const char* what) {
  if (v > Wide(INT64_MAX) || v < Wide(INT64_MIN)) {
    throw std::overflow_error(std::string(what) + " does not fit a 64-bit integer");
  }
  return static_cast<int64_t>(v);
}

}  // namespace

ParamCount count_params(const ModelConfig& c) {
  const Wide d = c.d_model;
  const Wide bias = c.qkv_bias ? 1 : 0;
  const Wide q_o = (2 * d + bias) * c.heads * c.head_dim();     // W_q (b_q) and W_o of one expert
  const Wide k_v = 2 * (d + bias) * c.kv_heads * c.head_dim();  // W_k and W_v (b_k, b_v)
  const Wide e_attn = c.attn_experts;
  const Wide kv_copies = c.attn_kv == KvMode::kShared ? 1 : e_attn;
  const Wide attn_active_experts = c.attn_routing == AttnRouting::kSoft ? e_attn : c.attn_top_k;
  const Wide ffn_one = 3 * d * c.expert_hidden();
  const Wide norms_per_layer = (c.block == BlockType::kParallel ? 1 : 2) * d;

  const Wide embedding = c.vocab * d * (c.tied_embeddings ? 1 : 2);
  const Wide norms = c.layers * norms_per_layer + d;
  Wide attention = 0, ffn = 0, routers = 0, total = embedding + norms, active = total;
  for (int64_t l = 0; l < c.layers; ++l) {
    const Wide attn = e_attn * q_o + kv_copies * k_v;
    const Wide attn_router = e_attn > 1 ? d * e_attn : 0;
    const Wide attn_active =
        attn_active_experts * q_o + (c.attn_kv == KvMode::kShared ? 1 : attn_active_experts) * k_v;
    const Wide e_ffn = c.ffn_experts_in_layer(l);
    const Wide ffn_router = e_ffn > 1 ? d * e_ffn : 0;
    const Wide k_ffn = e_ffn > 1 ? c.ffn_top_k : 1;
    attention += attn;
    ffn += e_ffn * ffn_one;
    routers += attn_router + ffn_router;
    total += attn + attn_router + e_ffn * ffn_one + ffn_router;
    active += attn_active + attn_router + k_ffn * ffn_one + ffn_router;
  }
  ParamCount p;
  p.total = narrow(total, "the parameter count");
  p.active = narrow(active, "the active parameter count");
  p.embedding = narrow(embedding, "the embedding parameter count");
  p.attention = narrow(attention, "the attention parameter count");
  p.ffn = narrow(ffn, "the FFN parameter count");
  p.routers = narrow(routers, "the router parameter count");
  p.norms = narrow(norms, "the norm parameter count");
  return p;
}

FlopCount count_flops(const ModelConfig& c, int64_t context) {
  const Wide d = c.d_model, n_ctx = context > 0 ? context : c.seq_len;
  const Wide q_width = Wide(c.heads) * c.head_dim(), kv_width = Wide(c.kv_heads) * c.head_dim();
  // Every attention expert runs, also under top-k routing, which zeroes the other gates
  // (attention.h).
  const Wide n_attn = c.attn_experts;
  const Wide kv_sets = c.attn_kv == KvMode::kShared ? 1 : n_attn;
  FlopCount f;
  Wide forward = 0;
  for (int64_t l = 0; l < c.layers; ++l) {
    const Wide attention = n_attn * 2 * d * q_width          // W_q
                           + kv_sets * 2 * 2 * d * kv_width  // W_k, W_v
                           + n_attn * 2 * n_ctx * q_width    // scores
                           + n_attn * 2 * q_width * d;       // W_o
    const Wide e_ffn = c.ffn_experts_in_layer(l);
    const Wide k_ffn = e_ffn > 1 ? c.ffn_top_k : 1;
    const Wide ffn = k_ffn * 3 * d * 2 * c.expert_hidden();
    const Wide routers =
        (c.attn_experts > 1 ? 2 * n_attn * d : 0) + (e_ffn > 1 ? 2 * e_ffn * d : 0);
    LayerFlops lf;
    lf.attention = narrow(attention, "attention FLOPs per token");
    lf.ffn = narrow(ffn, "FFN FLOPs per token");
    lf.routers = narrow(routers, "router FLOPs per token");
    forward += attention + ffn + routers;
    f.layers.push_back(lf);
  }
  const Wide head = 2 * d * c.vocab;
  f.head = narrow(head, "LM-head FLOPs per token");
  f.forward = narrow(forward + head, "FLOPs per token");
  narrow(3 * (forward + head), "training FLOPs per token");  // training() multiplies by 3
  return f;
}

}  // namespace upcycle::stages
