#include "stages/model/accounting.h"

namespace upcycle::stages {

ParamCount count_params(const ModelConfig& c) {
  ParamCount p;
  const int64_t d = c.d_model;
  const int64_t q_o = 2 * d * c.heads * c.head_dim();      // W_q and W_o of one expert
  const int64_t k_v = 2 * d * c.kv_heads * c.head_dim();   // W_k and W_v of one expert
  const int64_t e_attn = c.attn_experts;
  const int64_t kv_copies = c.attn_kv == "shared" ? 1 : e_attn;
  const int64_t attn_active_experts = c.attn_routing == "soft" ? e_attn : c.attn_top_k;
  const int64_t ffn_one = 3 * d * c.expert_hidden();
  const int64_t norms_per_layer = (c.block == "parallel" ? 1 : 2) * d;

  p.embedding = c.vocab * d * (c.tied_embeddings ? 1 : 2);
  p.norms = c.layers * norms_per_layer + d;
  p.total = p.embedding + p.norms;
  p.active = p.total;
  for (int64_t l = 0; l < c.layers; ++l) {
    int64_t attn = e_attn * q_o + kv_copies * k_v;
    int64_t attn_router = e_attn > 1 ? d * e_attn : 0;
    int64_t attn_active = attn_active_experts * q_o +
                          (c.attn_kv == "shared" ? 1 : attn_active_experts) * k_v;
    int64_t e_ffn = c.ffn_experts_in_layer(l);
    int64_t ffn_router = e_ffn > 1 ? d * e_ffn : 0;
    int64_t k_ffn = e_ffn > 1 ? c.ffn_top_k : 1;
    p.attention += attn;
    p.ffn += e_ffn * ffn_one;
    p.routers += attn_router + ffn_router;
    p.total += attn + attn_router + e_ffn * ffn_one + ffn_router;
    p.active += attn_active + attn_router + k_ffn * ffn_one + ffn_router;
  }
  return p;
}

FlopCount count_flops(const ModelConfig& c, int64_t context) {
  const int64_t d = c.d_model, n_ctx = context > 0 ? context : c.seq_len;
  const int64_t q_width = c.heads * c.head_dim(), kv_width = c.kv_heads * c.head_dim();
  // Every attention expert runs, also under top-k routing, which zeroes the other gates (attention.h).
  const int64_t n_attn = c.attn_experts;
  const int64_t kv_sets = c.attn_kv == "shared" ? 1 : n_attn;
  FlopCount f;
  for (int64_t l = 0; l < c.layers; ++l) {
    LayerFlops lf;
    lf.attention = n_attn * 2 * d * q_width       // W_q
                   + kv_sets * 2 * 2 * d * kv_width  // W_k, W_v
                   + n_attn * 2 * n_ctx * q_width    // scores
                   + n_attn * 2 * q_width * d;       // W_o
    const int64_t e_ffn = c.ffn_experts_in_layer(l);
    const int64_t k_ffn = e_ffn > 1 ? c.ffn_top_k : 1;
    lf.ffn = k_ffn * 3 * d * 2 * c.expert_hidden();
    lf.routers = (c.attn_experts > 1 ? 2 * c.attn_experts * d : 0) + (e_ffn > 1 ? 2 * e_ffn * d : 0);
    f.forward += lf.total();
    f.layers.push_back(lf);
  }
  f.head = 2 * d * c.vocab;
  f.forward += f.head;
  return f;
}

}  // namespace upcycle::stages
