// Functional building blocks shared by the model modules: norms, RoPE, SwiGLU.
// Shapes: B batch, T time, D d_model, H heads, C head_dim, F ffn hidden.
#pragma once

#include <ATen/Tensor.h>

#include "stages/arch/config.h"

namespace upcycle::stages {

/// LayerNorm (weight only, no bias, as BAM Table 9 counts) or RMSNorm over the last dimension.
at::Tensor apply_norm(const at::Tensor& x_BTD, const at::Tensor& weight_D, const ModelConfig& c);

/// RoPE tables for positions [start, start + T): cos and sin of shape [T, C/2].
struct RopeTables {
  at::Tensor cos_TC;
  at::Tensor sin_TC;
};
/// Tables for positions start .. start + T - 1, with the frequencies `c` asks for (rope_theta,
/// rope_scaling).
RopeTables make_rope(int64_t T, const ModelConfig& c, const at::Device& device, int64_t start = 0);

/// Rotates x [..., T, C] (halves convention, as in GPT-NeoX and Llama-HF) by the tables.
at::Tensor apply_rope(const at::Tensor& x_XTC, const RopeTables& rope);

/// SwiGLU: w2 (silu(x w1^T) * (x w3^T)) with w13 = [w1; w3]: one GEMM for both input projections.
/// x [N, D], w13 [2F, D], w2 [D, F] -> [N, D].
at::Tensor swiglu(const at::Tensor& x_ND, const at::Tensor& w13_2FD, const at::Tensor& w2_DF);

}  // namespace upcycle::stages
