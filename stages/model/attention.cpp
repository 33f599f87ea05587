#include "stages/model/attention.h"

#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>

namespace upcycle::stages {
namespace {

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 5)
#define UPCYCLE_SDPA_GQA 1  // SDPA takes fewer key/value heads than query heads (enable_gqa)
#endif

// GQA: each of the G kv heads serves Hq/G consecutive query heads. [X, G, T, C] -> [X, Hq, T, C].
[[maybe_unused]] at::Tensor expand_kv(const at::Tensor& kv, int64_t Hq) {
  return kv.size(1) == Hq ? kv : kv.repeat_interleave(Hq / kv.size(1), 1);
}

#if TORCH_VERSION_MAJOR >= 2
at::Tensor sdpa(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                const at::Tensor& mask = {}, bool causal = false) {
  const c10::optional<at::Tensor> m =
      mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt;
#ifdef UPCYCLE_SDPA_GQA
  return at::scaled_dot_product_attention(q, k, v, m, 0.0, causal, c10::nullopt,
                                          /*enable_gqa=*/k.size(1) != q.size(1));
#else
  return at::scaled_dot_product_attention(q, expand_kv(k, q.size(1)), expand_kv(v, q.size(1)), m,
                                          0.0, causal);
#endif
}
#endif

// Causal attention of queries [X, Hq, Tq, C] over keys and values [X, G, Tk, C], Tq <= Tk, where
// the G kv heads each serve Hq/G consecutive query heads (SDPA's GQA: no expanded copy of K and V);
// X folds experts and batch. The queries are the last Tq positions: query i sees keys 0 .. Tk - Tq
// + i. With `allowed_BTK` (rows left-padded, X = copies * B, copy-major) that mask replaces the
// causal one.
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& allowed_BTK = {}) {
  const int64_t Tq = q.size(-2), Tk = k.size(-2);
  if (allowed_BTK.defined()) {
    const int64_t copies = q.size(0) / allowed_BTK.size(0);
    auto allowed = allowed_BTK.unsqueeze(1).repeat({copies, 1, 1, 1});  // [X, 1, Tq, Tk]
#if TORCH_VERSION_MAJOR >= 2
    return sdpa(q, k, v, allowed);
#else
    auto att =
        torch::matmul(q, expand_kv(k, q.size(1)).transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
    return torch::matmul(att.masked_fill(allowed.logical_not(), -INFINITY).softmax(-1),
                         expand_kv(v, q.size(1)));
#endif
  }
#if TORCH_VERSION_MAJOR >= 2
  if (Tq == Tk) return sdpa(q, k, v, {}, /*causal=*/true);
  if (Tq == 1) return sdpa(q, k, v);  // one new position sees all
  return sdpa(q, k, v, torch::ones({Tq, Tk}, q.options().dtype(torch::kBool)).tril(Tk - Tq));
#else
  auto att =
      torch::matmul(q, expand_kv(k, q.size(1)).transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  auto masked = torch::ones({Tq, Tk}, q.options().dtype(torch::kBool)).triu(Tk - Tq + 1);
  return torch::matmul(att.masked_fill(masked, -INFINITY).softmax(-1), expand_kv(v, q.size(1)));
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

}  // namespace

// E = 1: one fused QKV matmul and plain matmuls (no einsum permutes), as a dense model would do it.
at::Tensor MixtureOfAttentionImpl::dense_forward(const at::Tensor& h_BTD, const RopeTables& rope,
                                                 LayerKvCache* kv) {
  const auto& c = config;
  const int64_t B = h_BTD.size(0), T = h_BTD.size(1), C = c.head_dim(), H = c.heads, G = c.kv_heads;
  // squeeze, not [0]: its backward is a view, where select's allocates and fills a zero tensor.
  auto w_QD =
      torch::cat({wq_EHD.squeeze(0), wk_EGD.squeeze(0), wv_EGD.squeeze(0)}, 0);  // [(H + 2G) C, D]
  auto qkv_BTQ = torch::matmul(h_BTD, w_QD.t());
  if (c.qkv_bias) qkv_BTQ = qkv_BTQ + torch::cat({bq_X, bk_X, bv_X}, 0);
  auto qkv = qkv_BTQ.split({H * C, G * C, G * C}, -1);
  auto heads = [&](const at::Tensor& y, int64_t n) { return y.view({B, T, n, C}).transpose(1, 2); };
  auto q = apply_rope(heads(qkv[0], H), rope);
  auto [k, v] = with_cache(kv, apply_rope(heads(qkv[1], G), rope), heads(qkv[2], G));
  auto y = causal_attention(q, k, v, kv ? kv->allowed_BTK : at::Tensor())
               .transpose(1, 2)
               .reshape({B, T, H * C});
  return torch::matmul(y, wo_EDH.squeeze(0).t());
}

MixtureOfAttentionImpl::MixtureOfAttentionImpl(const ModelConfig& c) : config(c) {
  const int64_t E = c.attn_experts, D = c.d_model, C = c.head_dim();
  const int64_t kv_copies = c.attn_kv == KvMode::kShared ? 1 : E;
  torch::NoGradGuard no_grad;
  const double out_std = c.init_std / std::sqrt(2.0 * c.layers);
  wq_EHD = register_parameter("wq", torch::randn({E, c.heads * C, D}) * c.init_std);
  wk_EGD = register_parameter("wk", torch::randn({kv_copies, c.kv_heads * C, D}) * c.init_std);
  wv_EGD = register_parameter("wv", torch::randn({kv_copies, c.kv_heads * C, D}) * c.init_std);
  wo_EDH = register_parameter("wo", torch::randn({E, D, c.heads * C}) * out_std);
  if (E > 1) router_ED = register_parameter("router", torch::randn({E, D}) * c.router_init_std);
  if (c.qkv_bias) {
    bq_X = register_parameter("bq", torch::zeros({E * c.heads * C}));
    bk_X = register_parameter("bk", torch::zeros({kv_copies * c.kv_heads * C}));
    bv_X = register_parameter("bv", torch::zeros({kv_copies * c.kv_heads * C}));
  }
}

at::Tensor MixtureOfAttentionImpl::forward(const at::Tensor& h_BTD, const RopeTables& rope,
                                           at::Tensor* gates_BTE, LayerKvCache* kv) {
  const auto& c = config;
  const int64_t B = h_BTD.size(0), T = h_BTD.size(1), E = c.attn_experts, C = c.head_dim();
  const int64_t H = c.heads, G = c.kv_heads, Ekv = wk_EGD.size(0);
  if (E == 1) return dense_forward(h_BTD, rope, kv);
  // Every expert's attention in one SDPA call. Projections of all experts at once: [E, B, T, n*C].
  auto project = [&](const at::Tensor& w_EOD, const at::Tensor& b_X) {
    auto y = torch::einsum("btd,eod->ebto", {h_BTD, w_EOD});
    return b_X.defined() ? y + b_X.view({w_EOD.size(0), 1, 1, w_EOD.size(1)}) : y;
  };
  auto q_EBTO = project(wq_EHD, bq_X);
  auto as_heads = [&](const at::Tensor& y, int64_t n) {  // [X, B, T, n*C] -> [X*B, n, T, C]
    return y.reshape({-1, T, n, C}).transpose(1, 2);
  };
  auto [k, v] = with_cache(kv, apply_rope(as_heads(project(wk_EGD, bk_X), G), rope),
                           as_heads(project(wv_EGD, bv_X), G));
  at::Tensor y_BTEO;  // each expert's attention output before its W_o: [B, T, E, H*C]
  const at::Tensor allowed = kv ? kv->allowed_BTK : at::Tensor();
  if (Ekv == E) {  // expert K/V: the experts are E batches of B sequences
    auto y =
        causal_attention(apply_rope(as_heads(q_EBTO, H), rope), k, v, allowed);  // [E*B, H, T, C]
    y_BTEO = y.reshape({E, B, H, T, C}).permute({1, 3, 0, 2, 4}).reshape({B, T, E, H * C});
  } else {  // shared K/V: the experts are E*H query heads over the same G kv heads (GQA), ordered
            // (kv head, expert, query head within the kv head's group) so each group's heads are
            // adjacent
    const int64_t r = H / G;
    auto q = q_EBTO.reshape({E, B, T, G, r, C})
                 .permute({1, 3, 0, 4, 2, 5})
                 .reshape({B, G * E * r, T, C});
    auto y = causal_attention(apply_rope(q, rope), k, v, allowed);  // [B, G*E*r, T, C]
    y_BTEO = y.reshape({B, G, E, r, T, C}).permute({0, 4, 2, 1, 3, 5}).reshape({B, T, E, H * C});
  }

  auto gates = torch::softmax(torch::matmul(h_BTD, router_ED.t()), -1);  // [B, T, E]
  if (c.attn_routing == AttnRouting::kTopK && c.attn_top_k < E) {
    auto [top_v, top_i] = gates.topk(c.attn_top_k, -1);
    gates = torch::zeros_like(gates).scatter(-1, top_i, top_v / top_v.sum(-1, true));
  }
  if (gates_BTE) *gates_BTE = gates.detach();
  // sum_e g_e (y_e W_o,e^T): the gates scale each expert's heads, then one GEMM over (expert,
  // head).
  return torch::einsum("bteo,edo->btd",
                       {y_BTEO * gates.unsqueeze(-1).to(y_BTEO.scalar_type()), wo_EDH});
}

}  // namespace upcycle::stages
