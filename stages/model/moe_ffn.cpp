#include "stages/model/moe_ffn.h"

#include <torch/torch.h>

#include <cmath>

#include "stages/model/layers.h"

namespace upcycle::stages {

MoeFfnImpl::MoeFfnImpl(const ModelConfig& c, int64_t n_experts) : config(c), experts(n_experts) {
  const int64_t E = n_experts, D = c.d_model, F = c.expert_hidden();
  torch::NoGradGuard no_grad;
  w1_EFD = register_parameter("w1", torch::randn({E, F, D}) * c.init_std);
  w3_EFD = register_parameter("w3", torch::randn({E, F, D}) * c.init_std);
  w2_EDF = register_parameter("w2", torch::randn({E, D, F}) * (c.init_std / std::sqrt(2.0 * c.layers)));
  if (E > 1) router_ED = register_parameter("router", torch::randn({E, D}) * c.router_init_std);
}

at::Tensor MoeFfnImpl::forward(const at::Tensor& h_BTD, RouterStats* stats) {
  const auto& c = config;
  const int64_t D = h_BTD.size(-1);
  auto x_ND = h_BTD.reshape({-1, D});
  if (experts == 1) {
    if (stats) {
      auto zero = torch::zeros({}, h_BTD.options());
      *stats = {zero, zero, torch::ones({1}, h_BTD.options())};
    }
    // squeeze, not [0]: its backward is a view, where select's allocates and fills a zero tensor.
    return swiglu(x_ND, w1_EFD.squeeze(0), w3_EFD.squeeze(0), w2_EDF.squeeze(0)).view_as(h_BTD);
  }
  const int64_t N = x_ND.size(0), E = experts, K = c.ffn_top_k;
  auto logits_NE = torch::matmul(x_ND, router_ED.t());
  auto probs_NE = torch::softmax(logits_NE, -1);
  at::Tensor weight_NK, expert_NK;
  if (c.ffn_routing == "topk_then_softmax") {
    auto top = logits_NE.topk(K, -1);
    weight_NK = torch::softmax(std::get<0>(top), -1);
    expert_NK = std::get<1>(top);
  } else {
    auto top = probs_NE.topk(K, -1);
    weight_NK = std::get<0>(top);
    expert_NK = std::get<1>(top);
    if (c.ffn_renormalize) weight_NK = weight_NK / weight_NK.sum(-1, true);
  }

  // Group the N*K (token, slot) pairs by expert, then one SwiGLU per expert on its tokens.
  auto expert_P = expert_NK.reshape({-1});
  auto order_P = torch::argsort(expert_P, /*stable=*/true);
  auto token_P = torch::arange(N, expert_NK.options()).repeat_interleave(K).index_select(0, order_P);
  auto weight_P = weight_NK.reshape({-1}).index_select(0, order_P);
  auto counts_E = torch::bincount(expert_P, {}, E).to(torch::kCPU);
  const int64_t* counts = counts_E.data_ptr<int64_t>();
  auto out_ND = torch::zeros_like(x_ND);
  // unbind once: its backward stacks the expert gradients, where one select per expert would each
  // allocate and zero a gradient the size of all experts.
  auto w1 = w1_EFD.unbind(0), w3 = w3_EFD.unbind(0), w2 = w2_EDF.unbind(0);
  int64_t start = 0;
  for (int64_t e = 0; e < E; ++e) {
    int64_t n = counts[e];
    if (n == 0) continue;
    auto tokens = token_P.narrow(0, start, n);
    auto y = swiglu(x_ND.index_select(0, tokens), w1[e], w3[e], w2[e]);
    // Under autocast y is bf16 while the residual stream, and so out_ND, stays fp32.
    out_ND.index_add_(0, tokens, (y * weight_P.narrow(0, start, n).unsqueeze(1)).to(out_ND.scalar_type()));
    start += n;
  }

  if (stats) {
    auto f_E = counts_E.to(probs_NE.device(), probs_NE.scalar_type()) / double(N * K);
    auto P_E = probs_NE.mean(0);
    stats->load_balance = double(E) * (f_E * P_E).sum();
    stats->z_loss = torch::logsumexp(logits_NE, -1).pow(2).mean();
    stats->util_E = f_E.detach();
  }
  return out_ND.view_as(h_BTD);
}

}  // namespace upcycle::stages
