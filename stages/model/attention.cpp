#include "stages/model/attention.h"

#include <torch/torch.h>

#include <cmath>

namespace upcycle::stages {
namespace {

// Causal attention of queries [X, H, Tq, C] over keys and values [X, H, Tk, C], Tq <= Tk; X folds
// experts and batch. The queries are the last Tq positions: query i sees keys 0 .. Tk - Tq + i.
// With `allowed_BTK` (rows left-padded, X = copies * B, copy-major) that mask replaces the causal one.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& allowed_BTK = {}) {
  const int64_t Tq = q.size(-2), Tk = k.size(-2);
  if (allowed_BTK.defined()) {
    const int64_t copies = q.size(0) / allowed_BTK.size(0);
    auto allowed = allowed_BTK.unsqueeze(1).repeat({copies, 1, 1, 1});  // [X, 1, Tq, Tk]
#if TORCH_VERSION_MAJOR >= 2
    return at::scaled_dot_product_attention(q, k, v, allowed);
#else
    auto att = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
    return torch::matmul(att.masked_fill(allowed.logical_not(), -INFINITY).softmax(-1), v);
#endif
  }
#if TORCH_VERSION_MAJOR >= 2
  if (Tq == Tk) return at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true);
  if (Tq == 1) return at::scaled_dot_product_attention(q, k, v);  // one new position sees all
  auto allowed = torch::ones({Tq, Tk}, q.options().dtype(torch::kBool)).tril(Tk - Tq);
  return at::scaled_dot_product_attention(q, k, v, allowed);
#else
  auto att = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  auto masked = torch::ones({Tq, Tk}, q.options().dtype(torch::kBool)).triu(Tk - Tq + 1);
  return torch::matmul(att.masked_fill(masked, -INFINITY).softmax(-1), v);
#endif
}

// Appends this step's k, v [X, G, T, C] to the cache (if any) and returns all positions' k, v.
std::pair<at::Tensor, at::Tensor> with_cache(LayerKvCache* kv, at::Tensor k, at::Tensor v) {
  if (!kv) return {k, v};
  if (kv->k_XGTC.defined()) {
    k = torch::cat({kv->k_XGTC, k}, 2);
    v = torch::cat({kv->v_XGTC, v}, 2);
  }
  kv->k_XGTC = k;
  kv->v_XGTC = v;
  return {k, v};
}

// GQA: each of the G kv heads serves H/G query heads. [X, G, T, C] -> [X, H, T, C].
at::Tensor expand_kv(const at::Tensor& kv, int64_t H) {
  return kv.size(1) == H ? kv : kv.repeat_interleave(H / kv.size(1), 1);
}

}  // namespace

// E = 1: one fused QKV matmul and plain matmuls (no einsum permutes), as a dense model would do it.
at::Tensor MixtureOfAttentionImpl::dense_forward(const at::Tensor& h_BTD, const RopeTables& rope, LayerKvCache* kv) {
  const auto& c = config;
  const int64_t B = h_BTD.size(0), T = h_BTD.size(1), C = c.head_dim(), H = c.heads, G = c.kv_heads;
  // squeeze, not [0]: its backward is a view, where select's allocates and fills a zero tensor.
  auto w_QD = torch::cat({wq_EHD.squeeze(0), wk_EGD.squeeze(0), wv_EGD.squeeze(0)}, 0);  // [(H + 2G) C, D]
  auto qkv = torch::matmul(h_BTD, w_QD.t()).split({H * C, G * C, G * C}, -1);
  auto heads = [&](const at::Tensor& y, int64_t n) { return y.view({B, T, n, C}).transpose(1, 2); };
  auto q = apply_rope(heads(qkv[0], H), rope);
  auto [k, v] = with_cache(kv, apply_rope(heads(qkv[1], G), rope), heads(qkv[2], G));
  auto y = causal_attention(q, expand_kv(k, H), expand_kv(v, H), kv ? kv->allowed_BTK : at::Tensor())
               .transpose(1, 2)
               .reshape({B, T, H * C});
  return torch::matmul(y, wo_EDH.squeeze(0).t());
}

MixtureOfAttentionImpl::MixtureOfAttentionImpl(const ModelConfig& c) : config(c) {
  const int64_t E = c.attn_experts, D = c.d_model, C = c.head_dim();
  const int64_t kv_copies = c.attn_kv == "shared" ? 1 : E;
  torch::NoGradGuard no_grad;
  const double out_std = c.init_std / std::sqrt(2.0 * c.layers);
  wq_EHD = register_parameter("wq", torch::randn({E, c.heads * C, D}) * c.init_std);
  wk_EGD = register_parameter("wk", torch::randn({kv_copies, c.kv_heads * C, D}) * c.init_std);
  wv_EGD = register_parameter("wv", torch::randn({kv_copies, c.kv_heads * C, D}) * c.init_std);
  wo_EDH = register_parameter("wo", torch::randn({E, D, c.heads * C}) * out_std);
  if (E > 1) router_ED = register_parameter("router", torch::randn({E, D}) * c.router_init_std);
}

at::Tensor MixtureOfAttentionImpl::forward(const at::Tensor& h_BTD, const RopeTables& rope,
                                           at::Tensor* gates_BTE, LayerKvCache* kv) {
  const auto& c = config;
  const int64_t B = h_BTD.size(0), T = h_BTD.size(1), E = c.attn_experts, C = c.head_dim();
  const int64_t H = c.heads, G = c.kv_heads, Ekv = wk_EGD.size(0);
  if (E == 1) return dense_forward(h_BTD, rope, kv);
  // Project all experts at once: [E, B, T, H*C] -> [E*B, H, T, C].
  auto heads = [&](const at::Tensor& w, int64_t n_heads, int64_t copies) {
    auto y = torch::einsum("btd,eod->ebto", {h_BTD, w});
    return y.reshape({copies * B, T, n_heads, C}).transpose(1, 2);
  };
  auto q = apply_rope(heads(wq_EHD, H, E), rope);
  auto [k, v] = with_cache(kv, apply_rope(heads(wk_EGD, G, Ekv), rope), heads(wv_EGD, G, Ekv));
  k = expand_kv(k, H);
  v = expand_kv(v, H);
  if (Ekv != E) {  // shared KV: the same K, V for every expert
    const int64_t Tk = k.size(2);
    k = k.reshape({1, B, H, Tk, C}).expand({E, B, H, Tk, C}).reshape({E * B, H, Tk, C});
    v = v.reshape({1, B, H, Tk, C}).expand({E, B, H, Tk, C}).reshape({E * B, H, Tk, C});
  }
  auto y = causal_attention(q, k, v, kv ? kv->allowed_BTK : at::Tensor());  // [E*B, H, T, C]
  y = y.transpose(1, 2).reshape({E, B, T, H * C});
  auto o_EBTD = torch::einsum("ebto,edo->ebtd", {y, wo_EDH});

  auto gates = torch::softmax(torch::matmul(h_BTD, router_ED.t()), -1);  // [B, T, E]
  if (c.attn_routing == "top_k" && c.attn_top_k < E) {
    auto [top_v, top_i] = gates.topk(c.attn_top_k, -1);
    gates = torch::zeros_like(gates).scatter(-1, top_i, top_v / top_v.sum(-1, true));
  }
  if (gates_BTE) *gates_BTE = gates.detach();
  return torch::einsum("bte,ebtd->btd", {gates, o_EBTD});
}

}  // namespace upcycle::stages
