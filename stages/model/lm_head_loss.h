// The output head and its cross-entropy, fused and chunked over tokens (as Liger's fused linear
// cross-entropy): logits exist for at most `chunk` tokens at a time, in the forward pass and in the
// backward pass, so a 256k vocabulary costs chunk x V, not N x V, of memory. When gradients are
// wanted, the forward pass computes them chunk by chunk (dL/dh for the chunk's tokens and the
// chunk's share of dL/dW) and backward only scales them: the same three GEMMs as the plain
// logits -> cross-entropy path, and no logits kept. Shapes: N tokens, D d_model, V vocab.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>

#include "stages/arch/memory.h"

namespace upcycle::stages {

/// Mean over the N tokens of -log softmax(h W^T)[target]: h [N, D], W [V, D], targets [N] int64.
/// Differentiable in h and W (when they require grad and grad mode is on); runs under the caller's
/// autocast, with logsumexp and the softmax in fp32. `chunk` <= 0 means default_loss_chunk(V)
/// (stages/arch/memory.h).
at::Tensor chunked_lm_loss(const at::Tensor& h_ND, const at::Tensor& w_VD,
                           const at::Tensor& targets_N, int64_t chunk = 0);

}  // namespace upcycle::stages
