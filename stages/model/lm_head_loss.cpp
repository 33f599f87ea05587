#include "stages/model/lm_head_loss.h"

#include <torch/torch.h>

namespace upcycle::stages {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// fp32 at least: the softmax and the loss of bf16 logits (autocast) are computed in fp32.
at::ScalarType wide(at::ScalarType t) { return at::promote_types(t, torch::kFloat32); }

// One chunk's logits (fp32 at least) and their logsumexp, [n, V] and [n].
std::pair<at::Tensor, at::Tensor> chunk_logits(const at::Tensor& h_nD, const at::Tensor& w_VD) {
  at::Tensor logits_nV = torch::matmul(h_nD, w_VD.t());
  logits_nV = logits_nV.to(wide(logits_nV.scalar_type()));
  at::Tensor lse_n = torch::logsumexp(logits_nV, -1);
  return {std::move(logits_nV), std::move(lse_n)};
}

// The mean loss; with grad_h and grad_w (allocated by the caller), their gradients too.
at::Tensor loss_and_grads(const at::Tensor& h_ND, const at::Tensor& w_VD, const at::Tensor& t_N,
                          int64_t chunk, at::Tensor* grad_h_ND, at::Tensor* grad_w_VD) {
  const int64_t N = h_ND.size(0);
  at::Tensor loss = torch::zeros({}, h_ND.options().dtype(wide(h_ND.scalar_type())));
  for (int64_t s = 0; s < N; s += chunk) {
    const int64_t n = std::min(chunk, N - s);
    const at::Tensor h_nD = h_ND.narrow(0, s, n), t_n = t_N.narrow(0, s, n).unsqueeze(1);
    auto [logits_nV, lse_n] = chunk_logits(h_nD, w_VD);
    loss += (lse_n - logits_nV.gather(1, t_n).squeeze(1)).sum();
    if (!grad_h_ND) continue;
    // d(mean CE)/d logits = (softmax - onehot) / N, in place over the chunk's logits.
    at::Tensor d_nV = logits_nV.sub_(lse_n.unsqueeze(1)).exp_();
    d_nV.scatter_add_(1, t_n, torch::full({n, 1}, -1.0, d_nV.options()));
    d_nV.div_(double(N));
    grad_h_ND->narrow(0, s, n).copy_(torch::matmul(d_nV.to(w_VD.scalar_type()), w_VD));
    grad_w_VD->add_(torch::matmul(d_nV.t().to(h_nD.scalar_type()), h_nD));
  }
  return loss / double(N);
}

struct ChunkedLmLoss : torch::autograd::Function<ChunkedLmLoss> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& h_ND, const at::Tensor& w_VD,
                            const at::Tensor& targets_N, int64_t chunk) {
    at::Tensor grad_h_ND = torch::empty_like(h_ND);
    at::Tensor grad_w_VD =
        torch::zeros(w_VD.sizes(), w_VD.options().dtype(wide(w_VD.scalar_type())));
    at::Tensor loss = loss_and_grads(h_ND, w_VD, targets_N, chunk, &grad_h_ND, &grad_w_VD);
    ctx->save_for_backward({grad_h_ND, grad_w_VD});
    ctx->saved_data["w_dtype"] = static_cast<int64_t>(w_VD.scalar_type());
    return loss;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& g = grad_out[0];
    const auto w_dtype = static_cast<at::ScalarType>(ctx->saved_data["w_dtype"].toInt());
    return {saved[0] * g.to(saved[0].scalar_type()), (saved[1] * g).to(w_dtype), at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

at::Tensor chunked_lm_loss(const at::Tensor& h_ND, const at::Tensor& w_VD,
                           const at::Tensor& targets_N, int64_t chunk) {
  if (chunk <= 0) chunk = default_loss_chunk(w_VD.size(0));
  const at::Tensor targets = targets_N.to(h_ND.device(), torch::kInt64);
  const bool grads =
      torch::GradMode::is_enabled() && (h_ND.requires_grad() || w_VD.requires_grad());
  if (!grads) {
    torch::NoGradGuard no_grad;
    return loss_and_grads(h_ND, w_VD, targets, chunk, nullptr, nullptr);
  }
  return ChunkedLmLoss::apply(h_ND, w_VD, targets, chunk);
}

}  // namespace upcycle::stages
