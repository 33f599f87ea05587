// The decoder LM: token embedding -> L blocks -> final norm -> output head. Each block holds a
// (Mixture-of-)Attention and a (MoE) FFN, so the same class is the dense seed, BTX, BAM and the
// sparse upcycled models; only ModelConfig differs.
//   parallel:   y = x + Attn(N(x)) + FFN(N(x))          (BAM, PaLM, GPT-J; one norm per block)
//   sequential: y = x + Attn(N1(x)); y = y + FFN(N2(y))  (Llama)
// Shapes: B batch, T time, D d_model, V vocab, E experts.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "stages/arch/config.h"
#include "stages/model/attention.h"
#include "stages/model/moe_ffn.h"

namespace upcycle::stages {

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& c, int64_t layer);
  at::Tensor forward(const at::Tensor& x_BTD, const RopeTables& rope, RouterStats* stats,
                     LayerKvCache* kv = nullptr);
  /// forward in training, with the activations `recompute` says to recompute in backward
  /// (recompute.h); fills `stats`.
  at::Tensor forward_train(const at::Tensor& x_BTD, const RopeTables& rope, RouterStats& stats,
                           Recompute recompute);

  ModelConfig config;
  at::Tensor norm1_D;
  at::Tensor norm2_D;  ///< sequential blocks only
  MixtureOfAttention attn{nullptr};
  MoeFfn ffn{nullptr};
};
TORCH_MODULE(Block);

/// What one forward returns: logits (or, from forward_hidden, the final normed hidden states) and
/// the routers' statistics per MoE layer.
struct LmOutput {
  at::Tensor logits_BTV;
  at::Tensor hidden_BTD;               ///< forward_hidden only: the output head's input
  at::Tensor aux_loss;                 ///< sum over MoE layers of lb_coef*L_LB + z_coef*L_z
  std::vector<RouterStats> ffn_stats;  ///< one per layer (dense layers have zeros)
};

/// Which positions forward() applies the output head to: all of them; only the last (a prompt's
/// prefill, where only the next token matters); none (a shared prefix that only fills the cache:
/// logits_BTV stays undefined). The head is most of the FLOPs at a large vocabulary.
enum class Logits { kAll, kLast, kNone };

/// Every layer's keys and values of the `length` positions a generation has seen.
struct KvCache {
  std::vector<LayerKvCache> layers;
  int64_t length = 0;
  /// Left padding of each row, [B] int64 (undefined = none): a row's first pad_B[b] positions are
  /// padding no other position attends to. RoPE scores depend only on distances, so a padded row
  /// computes what it would alone.
  at::Tensor pad_B;
  /// The cache of a batch of one, repeated for a batch of n (a shared prefix, then n
  /// continuations).
  KvCache repeated(int64_t n) const;
};

class TransformerLmImpl : public torch::nn::Module {
 public:
  explicit TransformerLmImpl(const ModelConfig& c);
  /// idx [B, T] int64 with T <= seq_len, on any device -> logits [B, T, V] on the weights' device.
  /// With `cache`, idx holds the positions after the cache's `length` (length + T <= seq_len), and
  /// the cache grows by T: greedy generation runs the prompt once, then one token per step.
  /// `logits` kLast gives logits [B, 1, V] of the last position; kNone none.
  LmOutput forward(const at::Tensor& idx_BT, KvCache* cache = nullptr,
                   Logits logits = Logits::kAll);
  /// Training's forward: the blocks (recomputing activations in backward as `recompute` says) and
  /// the final norm, without the output head: hidden_BTD, not logits_BTV. lm_loss_chunked applies
  /// the head and the loss a chunk of tokens at a time.
  LmOutput forward_hidden(const at::Tensor& idx_BT, Recompute recompute = Recompute::kNone);
  /// The embedding rows of idx [B, T] (on the weights' device): x_BTD, in at least fp32.
  at::Tensor embed(const at::Tensor& idx_BT) const;
  /// The output head's weight [V, D]: head_VD, or embed_VD when tied.
  const at::Tensor& output_weight() const { return config.tied_embeddings ? embed_VD : head_VD; }

  ModelConfig config;
  at::Tensor embed_VD;
  at::Tensor final_norm_D;
  at::Tensor head_VD;  ///< undefined when tied_embeddings
  torch::nn::ModuleList blocks{nullptr};
};
TORCH_MODULE(TransformerLm);

/// Mean next-token cross-entropy of logits [B, T, V] against targets [B, T] (moved to the logits'
/// device).
at::Tensor lm_loss(const at::Tensor& logits_BTV, const at::Tensor& targets_BT);
/// The same loss from forward_hidden's output, through the chunked head (lm_head_loss.h): logits
/// for at most `chunk` tokens at a time (<= 0: default_loss_chunk(V)).
at::Tensor lm_loss_chunked(TransformerLmImpl& model, const at::Tensor& hidden_BTD,
                           const at::Tensor& targets_BT, int64_t chunk = 0);

}  // namespace upcycle::stages
