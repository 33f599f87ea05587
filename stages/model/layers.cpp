#include "stages/model/layers.h"

#include <torch/torch.h>

#include <numbers>

namespace upcycle::stages {

at::Tensor apply_norm(const at::Tensor& x_BTD, const at::Tensor& weight_D, const ModelConfig& c) {
  if (c.norm == Norm::kRmsNorm) {
    auto inv = torch::rsqrt(x_BTD.pow(2).mean(-1, /*keepdim=*/true) + c.norm_eps);
    return x_BTD * inv * weight_D;
  }
  // bf16 weights (the trainer's, under ZeRO) normalise the fp32 stream in fp32.
  return torch::layer_norm(x_BTD, {x_BTD.size(-1)}, weight_D.to(x_BTD.scalar_type()),
                           /*bias=*/{}, c.norm_eps);
}

namespace {

// [C/2] RoPE inverse frequencies (rope_theta, rope_scaling).
at::Tensor rope_inv_freq(const ModelConfig& c, const torch::TensorOptions& opts) {
  const double C = double(c.head_dim());
  auto inv_freq_C = torch::pow(c.rope_theta, -torch::arange(0, c.head_dim(), 2, opts) / C);
  if (c.rope_scaling == RopeScaling::kNone) return inv_freq_C;
  // Llama 3.1: long wavelengths slowed by the factor, short ones kept, the band between blended.
  const double old_context = double(c.rope_original_context);
  const double low_wavelen = old_context / c.rope_low_freq_factor;
  const double high_wavelen = old_context / c.rope_high_freq_factor;
  auto wavelen_C = 2 * std::numbers::pi / inv_freq_C;
  auto smooth_C = (old_context / wavelen_C - c.rope_low_freq_factor) /
                  (c.rope_high_freq_factor - c.rope_low_freq_factor);
  auto blended_C = (1 - smooth_C) * inv_freq_C / c.rope_factor + smooth_C * inv_freq_C;
  return torch::where(wavelen_C > low_wavelen, inv_freq_C / c.rope_factor,
                      torch::where(wavelen_C < high_wavelen, inv_freq_C, blended_C));
}

}  // namespace

RopeTables make_rope(int64_t T, const ModelConfig& c, const at::Device& device, int64_t start) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(device);
  auto inv_freq_C = rope_inv_freq(c, opts);
  auto angles_TC = torch::outer(torch::arange(start, start + T, opts), inv_freq_C);
  return {angles_TC.cos().to(torch::kFloat32), angles_TC.sin().to(torch::kFloat32)};
}

at::Tensor apply_rope(const at::Tensor& x_XTC, const RopeTables& rope) {
  int64_t half = x_XTC.size(-1) / 2;
  auto x1 = x_XTC.narrow(-1, 0, half);
  auto x2 = x_XTC.narrow(-1, half, half);
  auto cos = rope.cos_TC.to(x_XTC.dtype());
  auto sin = rope.sin_TC.to(x_XTC.dtype());
  return torch::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
}

at::Tensor swiglu(const at::Tensor& x_ND, const at::Tensor& w13_2FD, const at::Tensor& w2_DF) {
  // [N, D] x [D, 2F] runs closer to peak than two GEMMs of half the width.
  auto gate_up = torch::matmul(x_ND, w13_2FD.t()).chunk(2, -1);
  auto h_NF = torch::silu(gate_up[0]) * gate_up[1];
  return torch::matmul(h_NF, w2_DF.t());
}

}  // namespace upcycle::stages
