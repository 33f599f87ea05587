#include "stages/model/transformer.h"

#include <torch/torch.h>

#include "stages/model/lm_head_loss.h"
#include "stages/model/recompute.h"

namespace upcycle::stages {

BlockImpl::BlockImpl(const ModelConfig& c, int64_t layer) : config(c) {
  norm1_D = register_parameter("norm1", torch::ones({c.d_model}));
  if (c.block == BlockType::kSequential)
    norm2_D = register_parameter("norm2", torch::ones({c.d_model}));
  attn = register_module("attn", MixtureOfAttention(c));
  ffn = register_module("ffn", MoeFfn(c, c.ffn_experts_in_layer(layer)));
}

at::Tensor BlockImpl::forward(const at::Tensor& x_BTD, const RopeTables& rope, RouterStats* stats,
                              LayerKvCache* kv) {
  at::Tensor gates_BTE;
  at::Tensor* gates = stats ? &gates_BTE : nullptr;
  at::Tensor y_BTD;
  if (config.block == BlockType::kParallel) {
    auto h = apply_norm(x_BTD, norm1_D, config);
    y_BTD = x_BTD + attn->forward(h, rope, gates, kv) + ffn->forward(h, stats);
  } else {
    auto y = x_BTD + attn->forward(apply_norm(x_BTD, norm1_D, config), rope, gates, kv);
    y_BTD = y + ffn->forward(apply_norm(y, norm2_D, config), stats);
  }
  if (gates_BTE.defined()) stats->attn_gate_E = gates_BTE.mean({0, 1});
  return y_BTD;
}

namespace {

// RouterStats as a list of tensors (for recompute_in_backward's outputs) and back; an undefined
// attention gate travels as an empty tensor.
std::vector<at::Tensor> stats_list(const at::Tensor& y, const RouterStats& s) {
  return {y, s.load_balance, s.z_loss, s.util_E,
          s.attn_gate_E.defined() ? s.attn_gate_E : torch::empty({0})};
}

RouterStats stats_from(const std::vector<at::Tensor>& out) {
  RouterStats s{out[1], out[2], out[3].detach(), at::Tensor()};
  if (out[4].numel() > 0) s.attn_gate_E = out[4].detach();
  return s;
}

}  // namespace

at::Tensor BlockImpl::forward_train(const at::Tensor& x_BTD, const RopeTables& rope,
                                    RouterStats& stats, Recompute recompute) {
  if (recompute == Recompute::kBlock) {
    auto out = recompute_in_backward(
        [this, rope](const at::Tensor& x) {
          RouterStats s;
          at::Tensor y = forward(x, rope, &s);
          return stats_list(y, s);
        },
        x_BTD);
    stats = stats_from(out);
    return out[0];
  }
  if (recompute == Recompute::kNone) return forward(x_BTD, rope, &stats);
  // selective: the attention as usual, the FFN recomputed
  auto ffn_recomputed = [this](const at::Tensor& h) {
    auto out = recompute_in_backward(
        [this](const at::Tensor& in) {
          RouterStats s;
          at::Tensor y = ffn->forward(in, &s);
          return stats_list(y, s);
        },
        h);
    return out;
  };
  at::Tensor gates_BTE, y_BTD;
  std::vector<at::Tensor> f;
  if (config.block == BlockType::kParallel) {
    auto h = apply_norm(x_BTD, norm1_D, config);
    f = ffn_recomputed(h);
    y_BTD = x_BTD + attn->forward(h, rope, &gates_BTE) + f[0];
  } else {
    auto y = x_BTD + attn->forward(apply_norm(x_BTD, norm1_D, config), rope, &gates_BTE);
    f = ffn_recomputed(apply_norm(y, norm2_D, config));
    y_BTD = y + f[0];
  }
  stats = stats_from(f);
  if (gates_BTE.defined()) stats.attn_gate_E = gates_BTE.mean({0, 1});
  return y_BTD;
}

TransformerLmImpl::TransformerLmImpl(const ModelConfig& c) : config(c) {
  c.validate();
  torch::NoGradGuard no_grad;
  embed_VD = register_parameter("embed", torch::randn({c.vocab, c.d_model}) * c.init_std);
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t l = 0; l < c.layers; ++l) blocks->push_back(Block(c, l));
  final_norm_D = register_parameter("final_norm", torch::ones({c.d_model}));
  if (!c.tied_embeddings) {
    head_VD = register_parameter("head", torch::randn({c.vocab, c.d_model}) * c.init_std);
  }
}

KvCache KvCache::repeated(int64_t n) const {
  KvCache out{{}, length};
  auto repeat = [n](const at::Tensor& x_XGTC) {  // X = copies * 1 -> copies * n, copy-major
    auto s = x_XGTC.sizes();
    return x_XGTC.unsqueeze(1)
        .expand({s[0], n, s[1], s[2], s[3]})
        .reshape({s[0] * n, s[1], s[2], s[3]});
  };
  for (const auto& l : layers) out.layers.push_back({repeat(l.k_XGTC), repeat(l.v_XGTC)});
  return out;
}

LmOutput TransformerLmImpl::forward(const at::Tensor& idx_BT, KvCache* cache, Logits logits) {
  const int64_t T = idx_BT.size(1), past = cache ? cache->length : 0;
  TORCH_CHECK(past + T <= config.seq_len, "sequence of ", past + T, " tokens exceeds seq_len ",
              config.seq_len);
  // Tokens may come from the host: they move to the weights' device here, so callers need not.
  const at::Tensor idx = idx_BT.to(embed_VD.device());
  auto rope = make_rope(T, config, idx.device(), past);
  if (cache) cache->layers.resize(blocks->size());
  at::Tensor allowed_BTK;  // with left-padded rows: causal, and no real position sees a pad
  if (cache && cache->pad_B.defined()) {
    const auto opts = torch::TensorOptions().dtype(torch::kInt64).device(idx.device());
    auto i = torch::arange(past, past + T, opts).view({1, T, 1});
    auto j = torch::arange(past + T, opts).view({1, 1, past + T});
    auto pad = cache->pad_B.to(idx.device()).view({-1, 1, 1});
    allowed_BTK =
        (j <= i).logical_and((j >= pad).logical_or(j == i));  // a pad sees itself: no empty row
  }
  auto x = embed(idx);
  LmOutput out;
  out.aux_loss = torch::zeros({}, x.options());
  for (size_t l = 0; l < blocks->size(); ++l) {
    RouterStats stats;
    if (cache) cache->layers[l].allowed_BTK = allowed_BTK;
    x = blocks[l]->as<BlockImpl>()->forward(x, rope, &stats, cache ? &cache->layers[l] : nullptr);
    out.aux_loss =
        out.aux_loss + config.lb_coef * stats.load_balance + config.z_coef * stats.z_loss;
    out.ffn_stats.push_back(std::move(stats));
  }
  if (cache) cache->length += T;
  if (logits == Logits::kNone) return out;
  if (logits == Logits::kLast) x = x.narrow(1, T - 1, 1);
  x = apply_norm(x, final_norm_D, config);
  out.logits_BTV = torch::matmul(x, (config.tied_embeddings ? embed_VD : head_VD).t());
  return out;
}

at::Tensor TransformerLmImpl::embed(const at::Tensor& idx_BT) const {
  // index_select, not embedding: its backward is an index_add, where CUDA's embedding backward
  // counts unique tokens on the host (a sync per step). The residual stream is at least fp32, also
  // when the weights are bf16 (the trainer's bf16 weights under ZeRO, optimizer.h).
  const at::Tensor x = embed_VD.index_select(0, idx_BT.reshape({-1}))
                           .view({idx_BT.size(0), idx_BT.size(1), embed_VD.size(1)});
  return x.to(at::promote_types(x.scalar_type(), at::kFloat));
}

LmOutput TransformerLmImpl::forward_hidden(const at::Tensor& idx_BT, Recompute recompute) {
  const int64_t T = idx_BT.size(1);
  TORCH_CHECK(T <= config.seq_len, "sequence of ", T, " tokens exceeds seq_len ", config.seq_len);
  const at::Tensor idx = idx_BT.to(embed_VD.device());
  auto rope = make_rope(T, config, idx.device());
  auto x = embed(idx);
  LmOutput out;
  out.aux_loss = torch::zeros({}, x.options());
  for (size_t l = 0; l < blocks->size(); ++l) {
    RouterStats stats;
    x = blocks[l]->as<BlockImpl>()->forward_train(x, rope, stats, recompute);
    out.aux_loss =
        out.aux_loss + config.lb_coef * stats.load_balance + config.z_coef * stats.z_loss;
    out.ffn_stats.push_back(std::move(stats));
  }
  out.hidden_BTD = apply_norm(x, final_norm_D, config);
  return out;
}

at::Tensor lm_loss_chunked(TransformerLmImpl& model, const at::Tensor& hidden_BTD,
                           const at::Tensor& targets_BT, int64_t chunk) {
  return chunked_lm_loss(hidden_BTD.reshape({-1, hidden_BTD.size(-1)}), model.output_weight(),
                         targets_BT.reshape({-1}), chunk);
}

at::Tensor lm_loss(const at::Tensor& logits_BTV, const at::Tensor& targets_BT) {
  return torch::nn::functional::cross_entropy(logits_BTV.reshape({-1, logits_BTV.size(-1)}),
                                              targets_BT.reshape({-1}).to(logits_BTV.device()));
}

}  // namespace upcycle::stages
