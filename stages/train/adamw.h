// One AdamW step as torch::optim::AdamW computes it, through LibTorch's fused AdamW kernel (>= 2.4,
// CPU and CUDA): one pass over each parameter instead of about ten elementwise ops. The state stays
// in the optimizer as AdamW's own (step, exp_avg, exp_avg_sq), so torch::save/load and checkpoints
// are unchanged. Older LibTorch, or amsgrad, falls back to opt.step().
#pragma once

#include <torch/optim/adamw.h>

namespace upcycle::stages {

void adamw_step(torch::optim::AdamW& opt);

}  // namespace upcycle::stages
