#include "stages/train/optimizer.h"

#include <torch/torch.h>

#include "core/error.h"
#include "core/log.h"
#include "stages/io/checkpoint_shards.h"
#include "stages/train/adamw.h"

namespace upcycle::stages {
namespace {

void set_lr(torch::optim::Optimizer& opt, double lr) {
  for (auto& g : opt.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
}

// clip_grad_norm_ as LibTorch computes it (per-gradient 2-norms, their 2-norm, one clamped factor),
// but returns the norm as a device tensor: LibTorch's returns a double, a host sync every step.
at::Tensor clip_grad_norm(const std::vector<at::Tensor>& params, double max_norm) {
  std::vector<at::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().detach().norm(2));
  }
  if (norms.empty()) return torch::zeros({});
  auto total = torch::stack(norms).norm(2);
  if (max_norm <= 0) return total;
  auto factor = torch::clamp(max_norm / (total + 1e-6), c10::nullopt, 1.0);
  for (const auto& p : params) {
    if (p.grad().defined()) p.grad().detach().mul_(factor);
  }
  return total;
}

// zero: 0. Gradients all-reduced in buckets during the last backward (DataParallel).
class ReplicatedAdamW final : public StepOptimizer {
 public:
  ReplicatedAdamW(const std::vector<at::Tensor>& params, const OptimSpec& o, DataParallel& dp)
      : params_(params), opt_(make_adamw(params, o)), dp_(dp) {
    dp_.overlap_gradients(params_);
    if (dp_.bucket_count() > 0) {
      core::log_info("data parallel: " + std::to_string(dp_.bucket_count()) +
                     " gradient buckets, each all-reduced as soon as backward completes it");
    }
  }
  void zero_grad() override { opt_->zero_grad(); }
  void before_last_backward() override { dp_.arm_gradient_sync(); }
  at::Tensor step(double lr, double grad_clip) override {
    dp_.finish_gradients(params_);
    at::Tensor norm = clip_grad_norm(params_, grad_clip);
    set_lr(*opt_, lr);
    adamw_step(*opt_);
    return norm;
  }
  // Rank r saves the state of its run of the parameters (split_evenly by size).
  std::vector<MomentSlice> state_slices() override {
    std::vector<int64_t> sizes;
    for (const auto& p : params_) sizes.push_back(p.numel());
    const std::vector<size_t> b = split_evenly(sizes, dp_.world_size());
    std::vector<MomentSlice> out;
    for (size_t k = b[dp_.rank()]; k < b[dp_.rank() + 1]; ++k) {
      auto it = opt_->state().find(params_[k].unsafeGetTensorImpl());
      if (it == opt_->state().end()) continue;  // never stepped
      const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
      out.push_back({k, 0, s.exp_avg().reshape({-1}), s.exp_avg_sq().reshape({-1}), {}, s.step()});
    }
    return out;
  }
  void load(const MomentSource& source) override {
    restore_master_weights(params_, source);
    for (size_t k = 0; k < params_.size(); ++k) {
      const at::Tensor& p = params_[k];
      at::Tensor m = source.read(k, 0, 0, p.numel());
      if (!m.defined()) continue;
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(source.step(k));
      s->exp_avg(m.view(p.sizes()).to(p.device()));
      s->exp_avg_sq(source.read(k, 1, 0, p.numel()).view(p.sizes()).to(p.device()));
      opt_->state()[p.unsafeGetTensorImpl()] = std::move(s);
    }
  }
  int64_t state_bytes() const override {
    int64_t n = 0;
    for (const auto& p : params_) n += 2 * p.numel() * 4;
    return n;
  }

 private:
  std::vector<at::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> opt_;
  DataParallel& dp_;
};

}  // namespace

std::vector<at::Tensor> trained_parameters(const std::vector<at::Tensor>& params) {
  std::vector<at::Tensor> out;
  for (const auto& p : params) {
    if (p.requires_grad()) out.push_back(p);
  }
  return out;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const std::vector<at::Tensor>& params,
                                                const OptimSpec& o) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& p : params) (p.dim() >= 2 ? decay : no_decay).push_back(p);
  auto opts = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(o.lr).betas({o.beta1, o.beta2}).eps(o.eps).weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, opts(o.weight_decay));
  groups.emplace_back(no_decay, opts(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(o.lr));
}

std::unique_ptr<StepOptimizer> make_step_optimizer(const std::vector<at::Tensor>& params,
                                                   const OptimSpec& o, DataParallel& dp,
                                                   int64_t zero, int64_t bucket_bytes,
                                                   bool bf16_weights) {
  const std::vector<at::Tensor> trained = trained_parameters(params);
  if (zero == 0) {
    if (bf16_weights) throw InternalError("bf16 weights need train.zero 1 or 2");
    return std::make_unique<ReplicatedAdamW>(trained, o, dp);
  }
  return make_sharded_adamw(trained, o, dp, zero, bucket_bytes, bf16_weights);
}

void restore_master_weights(const std::vector<at::Tensor>& params, const MomentSource& source) {
  torch::NoGradGuard no_grad;
  for (size_t k = 0; k < params.size(); ++k) {
    const at::Tensor master = source.read(k, 2, 0, params[k].numel());
    if (master.defined()) at::Tensor(params[k]).copy_(master.view(params[k].sizes()));
  }
}

}  // namespace upcycle::stages
