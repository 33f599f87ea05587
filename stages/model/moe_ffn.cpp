#include "stages/model/moe_ffn.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <cmath>

#include "stages/model/layers.h"

#if __has_include(<ATen/ops/_grouped_mm.h>)
#include <ATen/ops/_grouped_mm.h>
#define UPCYCLE_HAVE_GROUPED_MM 1
#endif

namespace upcycle::stages {
namespace {

// The N*K routed (token, expert) pairs sorted by expert (stable: token order within an expert).
struct RoutedPairs {
  at::Tensor token_P;   ///< int64 token index of each pair
  at::Tensor weight_P;  ///< its gate weight
  at::Tensor expert_P;  ///< its expert, ascending
  at::Tensor counts_E;  ///< int64 pairs per expert, on the device
};

RoutedPairs sort_by_expert(const at::Tensor& expert_NK, const at::Tensor& weight_NK, int64_t E) {
  const int64_t K = expert_NK.size(1);
  auto expert_flat = expert_NK.reshape({-1});
  auto order_P = torch::argsort(expert_flat, /*stable=*/true);
  RoutedPairs r;
  r.token_P = torch::div(order_P, K, "floor");  // pair p = n*K + k belongs to token n
  r.weight_P = weight_NK.reshape({-1}).index_select(0, order_P);
  r.expert_P = expert_flat.index_select(0, order_P);
  r.counts_E = torch::zeros({E}, expert_flat.options())
                   .scatter_add_(0, expert_flat, torch::ones_like(expert_flat));
  return r;
}

// x [P, D] sorted by expert -> SwiGLU of each row by its expert, [P, D].
at::Tensor experts_loop(const at::Tensor& x_PD, const at::Tensor& w13_E2FD,
                        const at::Tensor& w2_EDF, const at::Tensor& counts_E) {
  auto counts =
      counts_E.to(torch::kCPU);  // free on the CPU, the only place this mode runs by default
  // unbind once: its backward stacks the expert gradients, where one select per expert would each
  // allocate and zero a gradient the size of all experts.
  auto w13 = w13_E2FD.unbind(0), w2 = w2_EDF.unbind(0);
  std::vector<at::Tensor> parts;
  int64_t start = 0;
  for (int64_t e = 0; e < counts.size(0); ++e) {
    const int64_t n = counts[e].item<int64_t>();
    if (n == 0) continue;
    parts.push_back(swiglu(x_PD.narrow(0, start, n), w13[e], w2[e]));
    start += n;
  }
  return torch::cat(parts);
}

// Offsets (cumulative counts, int32, on the device) into one grouped GEMM per projection, in bf16.
at::Tensor experts_grouped(const at::Tensor& x_PD, const at::Tensor& w13_E2FD,
                           const at::Tensor& w2_EDF, const at::Tensor& counts_E) {
#ifdef UPCYCLE_HAVE_GROUPED_MM
  const auto bf16 = torch::kBFloat16;
  auto offs_E = counts_E.cumsum(0).to(torch::kInt32);
  auto gate_up =
      at::_grouped_mm(x_PD.to(bf16), w13_E2FD.to(bf16).transpose(1, 2), offs_E).chunk(2, -1);
  auto h_PF = torch::silu(gate_up[0]) * gate_up[1];
  return at::_grouped_mm(h_PF, w2_EDF.to(bf16).transpose(1, 2), offs_E);
#else
  (void)x_PD, (void)w13_E2FD, (void)w2_EDF, (void)counts_E;
  throw std::logic_error("MoE grouped dispatch: this LibTorch has no _grouped_mm");
#endif
}

// Each expert's rows scattered into its block of an [E, N, D] buffer (capacity N = every token),
// two batched GEMMs, and the rows gathered back. The unused rows are zeros and are never read.
at::Tensor experts_padded(const at::Tensor& x_PD, const at::Tensor& w13_E2FD,
                          const at::Tensor& w2_EDF, const RoutedPairs& r, int64_t N) {
  const int64_t E = w13_E2FD.size(0), D = x_PD.size(1), P = x_PD.size(0);
  auto start_E = r.counts_E.cumsum(0) - r.counts_E;
  auto rank_P = torch::arange(P, r.expert_P.options()) - start_E.index_select(0, r.expert_P);
  auto slot_P = r.expert_P * N + rank_P;
  auto x_END = torch::zeros({E * N, D}, x_PD.options()).index_copy(0, slot_P, x_PD).view({E, N, D});
  auto gate_up = torch::bmm(x_END, w13_E2FD.transpose(1, 2)).chunk(2, -1);
  auto h_ENF = torch::silu(gate_up[0]) * gate_up[1];
  return torch::bmm(h_ENF, w2_EDF.transpose(1, 2)).reshape({E * N, D}).index_select(0, slot_P);
}

bool cuda_autocast_bf16() {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  return at::autocast::is_autocast_enabled(at::kCUDA) &&
         at::autocast::get_autocast_dtype(at::kCUDA) == at::kBFloat16;
#else
  return at::autocast::is_enabled() && at::autocast::get_autocast_gpu_dtype() == at::kBFloat16;
#endif
}

MoeDispatch pick_dispatch(const at::Tensor& x) {
  if (!x.is_cuda()) return MoeDispatch::kLoop;
  if (grouped_mm_available() && (x.scalar_type() == at::kBFloat16 || cuda_autocast_bf16()))
    return MoeDispatch::kGrouped;
  return MoeDispatch::kPadded;
}

}  // namespace

bool grouped_mm_available() {
#ifdef UPCYCLE_HAVE_GROUPED_MM
  return true;
#else
  return false;
#endif
}

MoeFfnImpl::MoeFfnImpl(const ModelConfig& c, int64_t n_experts) : config(c), experts(n_experts) {
  const int64_t E = n_experts, D = c.d_model, F = c.expert_hidden();
  torch::NoGradGuard no_grad;
  auto w1 = torch::randn({E, F, D}) * c.init_std;  // drawn in this order: the same initial weights
  auto w3 = torch::randn({E, F, D}) * c.init_std;  // as separate w1, w3 parameters
  w13_E2FD = register_parameter("w13", torch::cat({w1, w3}, 1));
  w2_EDF =
      register_parameter("w2", torch::randn({E, D, F}) * (c.init_std / std::sqrt(2.0 * c.layers)));
  if (E > 1) router_ED = register_parameter("router", torch::randn({E, D}) * c.router_init_std);
}

at::Tensor MoeFfnImpl::w1_EFD() const { return w13_E2FD.narrow(1, 0, w13_E2FD.size(1) / 2); }
at::Tensor MoeFfnImpl::w3_EFD() const {
  return w13_E2FD.narrow(1, w13_E2FD.size(1) / 2, w13_E2FD.size(1) / 2);
}

at::Tensor MoeFfnImpl::forward(const at::Tensor& h_BTD, RouterStats* stats, MoeDispatch mode) {
  const auto& c = config;
  const int64_t D = h_BTD.size(-1);
  auto x_ND = h_BTD.reshape({-1, D});
  if (experts == 1) {
    if (stats) {
      auto zero = torch::zeros({}, h_BTD.options());
      *stats = {zero, zero, torch::ones({1}, h_BTD.options())};
    }
    // squeeze, not [0]: its backward is a view, where select's allocates and fills a zero tensor.
    return swiglu(x_ND, w13_E2FD.squeeze(0), w2_EDF.squeeze(0)).view_as(h_BTD);
  }
  const int64_t N = x_ND.size(0), E = experts, K = c.ffn_top_k;
  auto logits_NE = torch::matmul(x_ND, router_ED.t());
  auto probs_NE = torch::softmax(logits_NE, -1);
  at::Tensor weight_NK, expert_NK;
  if (c.ffn_routing == FfnRouting::kTopKThenSoftmax) {
    auto top = logits_NE.topk(K, -1);
    weight_NK = torch::softmax(std::get<0>(top), -1);
    expert_NK = std::get<1>(top);
  } else {
    auto top = probs_NE.topk(K, -1);
    weight_NK = std::get<0>(top);
    expert_NK = std::get<1>(top);
    if (c.ffn_renormalize) weight_NK = weight_NK / weight_NK.sum(-1, true);
  }

  const RoutedPairs r = sort_by_expert(expert_NK, weight_NK, E);
  auto x_PD = x_ND.index_select(0, r.token_P);
  if (mode == MoeDispatch::kAuto) mode = pick_dispatch(x_ND);
  at::Tensor y_PD = mode == MoeDispatch::kLoop ? experts_loop(x_PD, w13_E2FD, w2_EDF, r.counts_E)
                    : mode == MoeDispatch::kGrouped
                        ? experts_grouped(x_PD, w13_E2FD, w2_EDF, r.counts_E)
                        : experts_padded(x_PD, w13_E2FD, w2_EDF, r, N);
  // Under autocast y is bf16 while the residual stream, and so the output, stays fp32.
  auto out_ND = torch::zeros_like(x_ND).index_add(
      0, r.token_P, (y_PD * r.weight_P.unsqueeze(1)).to(x_ND.scalar_type()));

  if (stats) {
    auto f_E = r.counts_E.to(probs_NE.scalar_type()) / double(N * K);
    auto P_E = probs_NE.mean(0);
    stats->load_balance = double(E) * (f_E * P_E).sum();
    stats->z_loss = torch::logsumexp(logits_NE, -1).pow(2).mean();
    stats->util_E = f_E.detach();
  }
  return out_ND.view_as(h_BTD);
}

}  // namespace upcycle::stages
