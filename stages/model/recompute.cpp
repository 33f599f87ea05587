#include "stages/model/recompute.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>

namespace upcycle::stages {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The autocast state of the CPU and CUDA device types, saved in forward and restored around the
// recomputation (backward runs outside the trainer's autocast scope).
struct AutocastState {
  bool cpu = at::autocast::is_autocast_enabled(at::kCPU);
  bool cuda = at::autocast::is_autocast_enabled(at::kCUDA);
};

class AutocastRestore {
 public:
  explicit AutocastRestore(const AutocastState& want) : before_() {
    at::autocast::set_autocast_enabled(at::kCPU, want.cpu);
    at::autocast::set_autocast_enabled(at::kCUDA, want.cuda);
  }
  ~AutocastRestore() {
    at::autocast::set_autocast_enabled(at::kCPU, before_.cpu);
    at::autocast::set_autocast_enabled(at::kCUDA, before_.cuda);
    at::autocast::clear_cache();
  }
  AutocastRestore(const AutocastRestore&) = delete;
  AutocastRestore& operator=(const AutocastRestore&) = delete;

 private:
  AutocastState before_;
};

// What the node keeps besides the input: the function and the autocast state it ran under.
struct Closure : torch::CustomClassHolder {
  RecomputedFn fn;
  AutocastState autocast;
};

struct Recomputed : torch::autograd::Function<Recomputed> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x,
                               c10::intrusive_ptr<Closure> closure) {
    ctx->save_for_backward({x});
    variable_list out = closure->fn(x);  // grad mode is off inside a Function's forward
    ctx->saved_data["closure"] = c10::IValue::make_capsule(std::move(closure));
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto closure =
        c10::static_intrusive_pointer_cast<Closure>(ctx->saved_data["closure"].toCapsule());
    const at::Tensor x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    variable_list out;
    {
      torch::AutoGradMode grad(true);
      AutocastRestore autocast(closure->autocast);
      out = closure->fn(x);
    }
    variable_list roots, root_grads;
    for (size_t i = 0; i < out.size(); ++i) {
      if (out[i].requires_grad() && grads[i].defined()) {
        roots.push_back(out[i]);
        root_grads.push_back(grads[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, root_grads);
    return {x.grad(), at::Tensor()};
  }
};

}  // namespace

std::vector<at::Tensor> recompute_in_backward(RecomputedFn fn, const at::Tensor& x) {
  if (!torch::GradMode::is_enabled() || !x.requires_grad()) return fn(x);
  auto closure = c10::make_intrusive<Closure>();
  closure->fn = std::move(fn);
  return Recomputed::apply(x, std::move(closure));
}

}  // namespace upcycle::stages
