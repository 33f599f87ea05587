#include "stages/arch/memory.h"

#include <algorithm>
#include <cstdio>

#include "stages/arch/accounting.h"

namespace upcycle::stages {
namespace {

// What backward needs of one block, in elements per token: `stream` tensors stay fp32 (the
// residual stream and the norms' outputs), `mm` tensors are matmul outputs (bf16 under autocast).
// The counts follow the operations of stages/model (attention.cpp, moe_ffn.cpp, layers.cpp), each
// tensor an op saves for its backward counted once:
//   norms: the block's input and the norm's output (sequential blocks: both norms)
//   dense attention: the fused QKV output (V is a view of it, so all of it stays), rotated Q and K,
//     SDPA's output
//   attention experts: V, rotated Q and K of every expert and K/V copy, SDPA's output, the
//     experts' outputs reordered per token, and those scaled by their gates
//   FFN per routed copy (top_k of them; a dense FFN is one): the token's gathered input (MoE
//     only), gate+up (2F), SiLU (F), their product (F), and the expert's output (MoE only)
struct BlockActs {
  double stream = 0, mm = 0;
  double bytes(bool bf16) const { return 4 * stream + (bf16 ? 2 : 4) * mm; }
};

BlockActs attention_acts(const ModelConfig& c) {
  const double D = double(c.d_model), Dkv = double(c.kv_heads * c.head_dim());
  const double E = double(c.attn_experts);
  const double Ekv = c.attn_kv == KvMode::kShared ? 1 : E;
  if (E == 1) return {0, (D + 2 * Dkv) + D + Dkv + D};
  return {0, 2 * Ekv * Dkv + 4 * E * D + 2 * E};
}

BlockActs ffn_acts(const ModelConfig& c, int64_t experts) {
  const double D = double(c.d_model), F = double(c.expert_hidden());
  if (experts == 1) return {0, 4 * F};
  const double K = double(c.ffn_top_k), E = double(experts);
  return {3 * E, K * (2 * D + 4 * F)};
}

BlockActs norm_acts(const ModelConfig& c) {
  const double D = double(c.d_model);
  const double per_norm = c.norm == Norm::kRmsNorm ? 3 * D : 2 * D;
  return {c.block == BlockType::kSequential ? 2 * per_norm : per_norm, 0};
}

BlockActs sum(std::initializer_list<BlockActs> xs) {
  BlockActs out;
  for (const auto& x : xs) {
    out.stream += x.stream;
    out.mm += x.mm;
  }
  return out;
}

// The dense attention's fused QKV weight, concatenated on every forward and kept for backward.
double fused_qkv_weight_bytes(const ModelConfig& c) {
  if (c.attn_experts > 1) return 0;
  const double D = double(c.d_model), Dkv = double(c.kv_heads * c.head_dim());
  return 4 * D * (D + 2 * Dkv);
}

struct Layer {
  double kept = 0;       ///< bytes kept for backward from forward to this block's backward
  double recompute = 0;  ///< bytes its recomputation in backward creates (then frees)
  double full = 0;       ///< bytes of its full activations (its backward working set)
  double grads = 0;      ///< bytes of its parameters' gradients
};

std::vector<Layer> layers(const ModelConfig& c, const MemoryPlan& p, double N) {
  std::vector<Layer> out;
  const ParamCount total = count_params(c);
  const double per_layer_params =
      double(total.total - total.embedding - c.d_model) / double(std::max<int64_t>(1, c.layers));
  for (int64_t l = 0; l < c.layers; ++l) {
    const BlockActs attn = attention_acts(c), ffn = ffn_acts(c, c.ffn_experts_in_layer(l));
    const BlockActs norms = norm_acts(c);
    Layer x;
    x.full = N * sum({norms, attn, ffn}).bytes(p.bf16) + fused_qkv_weight_bytes(c);
    if (p.recompute == Recompute::kBlock) {
      x.kept = N * 4 * double(c.d_model);
      x.recompute = x.full;
    } else if (p.recompute == Recompute::kSelective) {
      x.kept = N * sum({norms, attn}).bytes(p.bf16) + fused_qkv_weight_bytes(c);
      x.recompute = N * ffn.bytes(p.bf16);
    } else {
      x.kept = x.full;
    }
    x.grads = 4 * per_layer_params;
    out.push_back(x);
  }
  return out;
}

int64_t chunk_of(const ModelConfig& c, const MemoryPlan& p, int64_t N) {
  return std::min(N, p.loss_chunk_tokens > 0 ? p.loss_chunk_tokens : default_loss_chunk(c.vocab));
}

}  // namespace

int64_t default_loss_chunk(int64_t vocab) {
  const int64_t budget = int64_t(1) << 26;
  int64_t chunk = 1;
  while (chunk * 2 * vocab <= budget) chunk *= 2;
  return chunk;
}

std::vector<MemoryTerm> MemoryEstimate::largest() const {
  std::vector<MemoryTerm> all = persistent;
  all.insert(all.end(), working.begin(), working.end());
  std::stable_sort(all.begin(), all.end(),
                   [](const MemoryTerm& a, const MemoryTerm& b) { return a.bytes > b.bytes; });
  return all;
}

MemoryEstimate estimate_memory(const ModelConfig& c, const MemoryPlan& p) {
  const ParamCount pc = count_params(c);
  const double P = double(pc.total), d = double(std::max<int64_t>(1, p.world));
  const double D = double(c.d_model), V = double(c.vocab);
  const double N = double(p.micro_batch * c.seq_len);
  const double n = double(chunk_of(c, p, p.micro_batch * c.seq_len));
  const double bucket = double(p.bucket_bytes);
  MemoryEstimate e;
  auto add = [](std::vector<MemoryTerm>& to, const char* name, double bytes) {
    if (bytes > 0) to.push_back({name, static_cast<int64_t>(bytes)});
  };
  // Persistent: weights, optimizer state, and the gradient buffers that live across steps.
  // bf16 weights: 2 bytes, and the fp32 masters (4) join the moments (8) in the optimizer's shard.
  const bool bf16_w = bf16_weights(p.bf16, p.zero);
  add(e.persistent, "weights", (bf16_w ? 2 : 4) * P);
  if (p.zero == 0) {
    add(e.persistent, "optimizer", 8 * P);
    if (d > 1) add(e.persistent, "gradient buckets", 4 * P);
  } else {
    add(e.persistent, "optimizer", (bf16_w ? 12 : 8) * P / d);
    if (p.zero == 1) add(e.persistent, "gradients", 4 * P);
    if (p.zero == 2) add(e.persistent, "gradients", 4 * P / d);
  }
  const double casts = p.bf16 && !bf16_w ? 2 * P : 0;  // autocast's bf16 copies of fp32 weights
  // Gradients that appear during backward (zero 0: .grad, freed at the next step's start; zero 2:
  // a bucket in flight and the .grads of one bucket).
  const double grads_live = p.zero == 0 ? 4 * P : p.zero == 2 ? 2 * bucket : 0;
  const double grads_scale = p.zero == 0 ? 1.0 : 0.0;

  // Forward-backward: walk backward block by block from the top.
  const std::vector<Layer> ls = layers(c, p, N);
  double kept = 0;
  for (const auto& l : ls) kept += l.kept;
  const double loss_kept = 4 * N * D + 4 * V * D;  // dL/dh and dL/dW_head from the fused forward
  const double chunk_fwd = 2 * 4 * n * V + 4 * V * D;  // logits, logsumexp's temp, dW's partial
  const double head_grads = grads_scale * 4 * double(pc.embedding) / (c.tied_embeddings ? 1 : 2);
  const double stream = 4 * N * D;  // the residual stream's gradient and the final norm's input
  double fb = kept + stream + loss_kept + chunk_fwd;  // end of forward, in the loss
  std::string phase_term = "loss chunk";
  double phase_bytes = chunk_fwd;
  double grads = head_grads + grads_scale * 4 * D;
  // The loss's backward: dL/dW scaled (a second V x D) while the head's gradient lands.
  double worst = std::max(fb, kept + stream + loss_kept + 4 * V * D + grads);
  double below = kept;
  for (size_t i = ls.size(); i-- > 0;) {
    const Layer& l = ls[i];
    // In block i's backward: the blocks below still kept, this block's recomputation (if any) and
    // its backward's working set (the gradients of its activations, about as large), the
    // gradients of the blocks above.
    below -= l.kept;
    const double here = below + l.kept + l.recompute + l.full + 2 * stream + grads;
    if (here > worst) {
      worst = here;
      phase_term = "block backward";
      phase_bytes = l.recompute + l.full + 2 * stream;
    }
    grads += grads_scale * l.grads;
  }
  // The embedding's gradient comes last (an index_add into a V x D gradient).
  if (!c.tied_embeddings) grads += grads_scale * 4 * V * D;
  worst = std::max(worst, grads + 2 * stream);

  // Validation: a no-grad forward at micro-batch N; zero 0's gradients of the last step are alive.
  double block_eval = 0;
  for (const auto& l : ls) block_eval = std::max(block_eval, l.full);
  // Intermediates are freed as soon as they are used: the larger of one block's working set and
  // the head's chunk (its logits and logsumexp's temporary) beside the final hidden states.
  const double val_work = std::max(block_eval + stream, stream + 2 * 4 * n * V);
  const double val = grads_live + casts + val_work;
  const double fb_total = worst + casts;
  if (fb_total >= val) {
    e.peak_phase = "backward";
    add(e.working, "activations", kept);
    add(e.working, "loss (dL/dh, dL/dW_head)", loss_kept);
    add(e.working, phase_term == "loss chunk" ? "loss chunk" : "block backward", phase_bytes);
    add(e.working, "bf16 weight casts", casts);
    const double listed = kept + loss_kept + phase_bytes;
    add(e.working, "gradients and other backward buffers", fb_total - casts - listed);
  } else {
    e.peak_phase = "validation";
    add(e.working, "gradients (last step)", grads_live);
    add(e.working, "bf16 weight casts", casts);
    add(e.working, "validation forward", val_work);
  }
  for (const auto& t : e.persistent) e.peak += t.bytes;
  for (const auto& t : e.working) e.peak += t.bytes;
  return e;
}

MemoryEstimate estimate_surgery_memory(const ModelConfig& dense, int64_t sources,
                                       const ModelConfig& moe) {
  const double Pd = double(count_params(dense).total), Pm = double(count_params(moe).total);
  const double largest = 4 * double(moe.vocab) * double(moe.d_model);  // the embedding's rows
  MemoryEstimate e;
  e.peak_phase = "surgery";
  e.persistent = {{"dense sources", int64_t(4 * Pd * double(sources))},
                  {"mixture module", int64_t(4 * Pm)},
                  {"mixture state", int64_t(4 * Pm)}};
  e.working = {{"largest tensor in flight", int64_t(largest)}};
  for (const auto& t : e.persistent) e.peak += t.bytes;
  for (const auto& t : e.working) e.peak += t.bytes;
  return e;
}

MemoryEstimate estimate_eval_memory(const std::vector<std::vector<ModelConfig>>& groups,
                                    int64_t max_windows) {
  const int64_t windows =
      max_windows > 0 ? std::min(kEvalBatchWindows, max_windows) : kEvalBatchWindows;
  MemoryEstimate best;
  for (const auto& group : groups) {
    if (group.empty()) continue;
    double weights = 0, largest_forward = 0;
    for (const auto& c : group) {
      weights += 4 * double(count_params(c).total);
      MemoryPlan p;
      p.micro_batch = windows;
      const double N = double(windows * c.seq_len);
      double block = 0;
      for (const auto& l : layers(c, p, N)) block = std::max(block, l.full);
      // The full logits and cross-entropy's log-softmax of them, beside the final hidden states.
      const double head = 2 * 4 * N * double(c.vocab) + 4 * N * double(c.d_model);
      largest_forward = std::max(largest_forward, std::max(block, head));
    }
    // The last member's state beside its module, and one tensor's transient (the largest, V x D).
    const ModelConfig& last = group.back();
    const double loading =
        4 * double(count_params(last).total) + 4 * double(last.vocab) * double(last.d_model);
    MemoryEstimate e;
    e.persistent = {{"weights", int64_t(weights)}};
    if (loading >= largest_forward) {
      e.peak_phase = "loading";
      e.working = {{"state while loading", int64_t(loading)}};
    } else {
      e.peak_phase = "forward";
      e.working = {{"forward (logits, log-softmax)", int64_t(largest_forward)}};
    }
    for (const auto& t : e.persistent) e.peak += t.bytes;
    for (const auto& t : e.working) e.peak += t.bytes;
    if (e.peak > best.peak) best = e;
  }
  return best;
}

std::string format_bytes(double bytes) {
  char buf[32];
  if (bytes >= double(int64_t(1) << 30))
    std::snprintf(buf, sizeof(buf), "%.1f GiB", bytes / double(int64_t(1) << 30));
  else
    std::snprintf(buf, sizeof(buf), "%.0f MiB", bytes / double(1 << 20));
  return buf;
}

std::string describe_memory(const MemoryEstimate& e, size_t terms) {
  std::string out = format_bytes(double(e.peak)) + " at " + e.peak_phase + ": ";
  const auto all = e.largest();
  for (size_t i = 0; i < all.size() && i < terms; ++i)
    out += (i ? ", " : "") + all[i].name + " " + format_bytes(double(all[i].bytes));
  return out;
}

}  // namespace upcycle::stages
