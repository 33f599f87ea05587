// Activation checkpointing: run a function of one tensor without keeping its intermediate
// activations, and run it again in backward to get them (as torch.utils.checkpoint's reentrant
// variant). Only the input is kept. The function's parameters receive their gradients from the
// recomputation's own backward, so they need not be listed. The forward pass and the recomputation
// run the same operations under the same autocast state, so the outputs, and therefore the loss,
// are bit for bit those of the plain path; the function must be deterministic and draw no random
// numbers (the model has no dropout).
#pragma once

#include <ATen/Tensor.h>

#include <functional>
#include <vector>

namespace upcycle::stages {

using RecomputedFn = std::function<std::vector<at::Tensor>(const at::Tensor& x)>;

/// fn(x) when grad mode is off or x needs no gradient; otherwise fn(x) computed without a graph,
/// its outputs differentiable through a node whose backward recomputes fn(x) with one.
std::vector<at::Tensor> recompute_in_backward(RecomputedFn fn, const at::Tensor& x);

}  // namespace upcycle::stages
