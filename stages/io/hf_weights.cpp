#include "stages/io/hf_weights.h"

#include <torch/torch.h>

#include <set>

#include "core/error.h"

namespace upcycle::stages {
namespace {

// One of our tensors and the Hugging Face tensors it is made of: `hf` names one tensor, or with
// `stacked` one per slice of our leading (expert) dimension.
struct Row {
  std::string ours;
  std::vector<int64_t> hf_shape;  ///< of each Hugging Face tensor
  std::vector<std::string> hf;
  bool stacked = false;
  int64_t rope_heads = 0;  ///< > 0: Cohere's interleaved RoPE rows, this many heads
};

std::vector<Row> layout(const ModelConfig& m, HfFormat f) {
  const int64_t D = m.d_model, V = m.vocab, HC = m.heads * m.head_dim(),
                GC = m.kv_heads * m.head_dim();
  const bool cohere = f == HfFormat::kCohere;
  std::vector<Row> rows = {{"embed", {V, D}, {"model.embed_tokens.weight"}},
                           {"final_norm", {D}, {"model.norm.weight"}}};
  if (!m.tied_embeddings) rows.push_back({"head", {V, D}, {"lm_head.weight"}});
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string ours = "blocks." + std::to_string(l) + ".",
                      hf = "model.layers." + std::to_string(l) + ".";
    rows.push_back({ours + "norm1", {D}, {hf + "input_layernorm.weight"}});
    if (m.block == BlockType::kSequential)
      rows.push_back({ours + "norm2", {D}, {hf + "post_attention_layernorm.weight"}});
    rows.push_back(
        {ours + "attn.wq", {HC, D}, {hf + "self_attn.q_proj.weight"}, true, cohere ? m.heads : 0});
    rows.push_back({ours + "attn.wk",
                    {GC, D},
                    {hf + "self_attn.k_proj.weight"},
                    true,
                    cohere ? m.kv_heads : 0});
    rows.push_back({ours + "attn.wv", {GC, D}, {hf + "self_attn.v_proj.weight"}, true});
    rows.push_back({ours + "attn.wo", {D, HC}, {hf + "self_attn.o_proj.weight"}, true});
    const int64_t E = m.ffn_experts_in_layer(l), F = m.expert_hidden();
    if (E == 1) {
      rows.push_back({ours + "ffn.w1", {F, D}, {hf + "mlp.gate_proj.weight"}, true});
      rows.push_back({ours + "ffn.w3", {F, D}, {hf + "mlp.up_proj.weight"}, true});
      rows.push_back({ours + "ffn.w2", {D, F}, {hf + "mlp.down_proj.weight"}, true});
      continue;
    }
    rows.push_back({ours + "ffn.router", {E, D}, {hf + "block_sparse_moe.gate.weight"}});
    for (const char* w : {"w1", "w3", "w2"}) {
      Row r{ours + "ffn." + w,
            std::string(w) == "w2" ? std::vector<int64_t>{D, F} : std::vector<int64_t>{F, D},
            {},
            true};
      for (int64_t e = 0; e < E; ++e)
        r.hf.push_back(hf + "block_sparse_moe.experts." + std::to_string(e) + "." + w + ".weight");
      rows.push_back(r);
    }
  }
  return rows;
}

// Rows of `heads` heads from our half-split RoPE order to Cohere's interleaved one, or back.
at::Tensor permute_rope(const at::Tensor& w, int64_t heads, bool to_interleaved) {
  const int64_t C = w.size(0) / heads, D = w.size(1);
  auto v = to_interleaved ? w.reshape({heads, 2, C / 2, D}) : w.reshape({heads, C / 2, 2, D});
  return v.transpose(1, 2).reshape({heads * C, D}).contiguous();
}

}  // namespace

TensorMap to_hf_tensors(const TensorMap& ours, const ModelConfig& m, HfFormat f,
                        at::ScalarType dtype) {
  const std::string why = hf_export_refusal(m, f);
  if (!why.empty())
    throw StageError(std::string("cannot export as ") + hf_format_name(f) + ": " + why);
  TensorMap out;
  auto put = [&](const std::string& name, const at::Tensor& t) {
    out[name] = t.detach().to(torch::kCPU, dtype).contiguous();
  };
  if (f == HfFormat::kNative) {
    for (const auto& [name, t] : ours) put(name, t);
    return out;
  }
  for (const Row& r : layout(m, f)) {
    auto it = ours.find(r.ours);
    if (it == ours.end()) throw InternalError("export: the model has no tensor " + r.ours);
    for (size_t i = 0; i < r.hf.size(); ++i) {
      at::Tensor t = r.stacked ? it->second[static_cast<int64_t>(i)] : it->second;
      put(r.hf[i], r.rope_heads > 0 ? permute_rope(t, r.rope_heads, true) : t);
    }
  }
  return out;
}

TensorMap from_hf_tensors(const TensorMap& hf, const HfModel& model, const std::string& origin) {
  TensorMap out;
  if (model.format == HfFormat::kNative) {
    for (const auto& [name, t] : hf) out[name] = t.to(torch::kFloat32);
    return out;
  }
  ModelConfig m =
      model.model;  // as the checkpoint stores it: tied or not before a logit scale is folded in
  m.tied_embeddings = model.hf_tied_embeddings;
  std::set<std::string> used;
  auto take = [&](const std::string& name, const std::vector<int64_t>& shape) {
    auto it = hf.find(name);
    if (it == hf.end())
      throw StageError(origin + ": missing tensor " + name + " (" + hf_format_name(model.format) +
                       " layout)");
    if (it->second.sizes().vec() != shape) {
      throw StageError(origin + ": tensor " + name + " has shape " + c10::str(it->second.sizes()) +
                       ", config.json implies " + c10::str(at::IntArrayRef(shape)));
    }
    used.insert(name);
    return it->second.to(torch::kFloat32);
  };
  for (const Row& r : layout(m, model.format)) {
    std::vector<at::Tensor> parts;
    for (const auto& name : r.hf) {
      at::Tensor t = take(name, r.hf_shape);
      parts.push_back(r.rope_heads > 0 ? permute_rope(t, r.rope_heads, false) : t);
    }
    out[r.ours] = r.stacked ? torch::stack(parts) : parts.at(0);
  }
  if (model.logit_scale !=
      1.0) {  // Cohere: logits = scale * (h . head); an untied head computes it
    out["head"] = out.at(m.tied_embeddings ? "embed" : "head") * model.logit_scale;
  }
  for (const auto& [name, t] : hf) {
    // Buffers some writers save, and the copy of a tied head some save anyway.
    const bool ignorable = name.find("rotary_emb.inv_freq") != std::string::npos ||
                           (name == "lm_head.weight" && m.tied_embeddings);
    if (!used.count(name) && !ignorable) {
      throw StageError(
          origin + ": unexpected tensor " + name + ": the " + hf_format_name(model.format) +
          " layout upcycle reads has no such tensor (a bias, or an option upcycle's model lacks)");
    }
  }
  return out;
}

}  // namespace upcycle::stages
