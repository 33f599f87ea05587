// Mixture-of-Experts SwiGLU FFN with token-choice top-k routing. E = 1 is the dense FFN (no
// router). Expert weights are stacked along a leading E dimension (upcycling stacks dense weights);
// the gate and up projections are one parameter, w13 = [w1; w3] along F, so SwiGLU's input side is
// one GEMM without concatenating weights on every call. Checkpoints keep w1 and w3 as separate
// tensors (stages/io/checkpoint.cpp splits and joins them). Forward steps: router logits ->
// probabilities -> top-k -> sort the N*K (token, expert) pairs by expert -> the experts' SwiGLUs on
// their gathered tokens -> weighted index_add back into the output.
//   softmax_then_topk: p = softmax(logits), keep the top-k p (optionally renormalised)  (BAM,
//   NVIDIA) topk_then_softmax: keep the top-k logits, softmax over them (BTX, Mixtral)
// Dispatch (how the experts' SwiGLUs run; every mode is dropless and computes the same function):
//   loop     one matmul chain per expert on its tokens; needs the per-expert counts on the host, so
//   a
//            device-to-host copy per layer: the CPU's mode, where that copy is free.
//   grouped  LibTorch's grouped GEMM (at::_grouped_mm, LibTorch >= 2.8) over the expert-sorted
//   tokens
//            with on-device offsets: no host synchronisation. CUDA in bf16 (CUTLASS kernels,
//            sm90+).
//   padded   every expert's tokens scattered into an [E, N, D] buffer (capacity N: no token is ever
//            dropped), then two batched GEMMs: no host synchronisation, E/K times the expert FLOPs
//            of the others. CUDA where grouped does not apply (fp32, or an older LibTorch).
// Routing counts are a scatter_add, not bincount (which reads its input's maximum on the host).
// Shapes: N tokens (B*T), D d_model, E experts, K top_k, F expert hidden, P = N*K routed pairs.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "stages/arch/config.h"

namespace upcycle::stages {

/// Router statistics of one forward of one block, for the trainer, eval and the store.
struct RouterStats {
  at::Tensor load_balance;  ///< scalar: E * sum_i f_i P_i (Switch); 0 for a dense FFN
  at::Tensor z_loss;        ///< scalar: mean over tokens of logsumexp(logits)^2 (ST-MoE)
  at::Tensor util_E;        ///< fraction of routed (token, slot) pairs per expert, detached
  at::Tensor attn_gate_E;   ///< the attention router's mean gate per expert, detached; undefined
                            ///< for dense attention (filled by the block, not the FFN)
};

enum class MoeDispatch { kAuto, kLoop, kGrouped, kPadded };

/// True when this LibTorch has at::_grouped_mm.
bool grouped_mm_available();

class MoeFfnImpl : public torch::nn::Module {
 public:
  MoeFfnImpl(const ModelConfig& c, int64_t experts);
  /// h [B, T, D] -> [B, T, D]; fills `stats` when non-null. kAuto picks loop on the CPU, grouped on
  /// CUDA in bf16 where available, padded otherwise; tests force a mode.
  at::Tensor forward(const at::Tensor& h_BTD, RouterStats* stats = nullptr,
                     MoeDispatch mode = MoeDispatch::kAuto);

  /// Views of w13: the gate (w1) and up (w3) projections, [E, F, D] each.
  at::Tensor w1_EFD() const;
  at::Tensor w3_EFD() const;

  ModelConfig config;
  int64_t experts;
  at::Tensor w13_E2FD;   ///< [E, 2F, D]: w1 rows, then w3 rows
  at::Tensor w2_EDF;     ///< [E, D, F] down projection
  at::Tensor router_ED;  ///< [E, D]; undefined when E = 1
};
TORCH_MODULE(MoeFfn);

}  // namespace upcycle::stages
