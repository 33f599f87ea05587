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
    if (m.qkv_bias) {  // ours flat [E*n] with E = 1: the Hugging Face vector as it is
      rows.push_back({ours + "attn.bq", {HC}, {hf + "self_attn.q_proj.bias"}});
      rows.push_back({ours + "attn.bk", {GC}, {hf + "self_attn.k_proj.bias"}});
      rows.push_back({ours + "attn.bv", {GC}, {hf + "self_attn.v_proj.bias"}});
    }
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

// Phi-3 keeps each layer's q, k, v projections as one qkv_proj and gate, up as one gate_up_proj,
// stacked along the output dimension in that order; otherwise llama's layout.
struct Fused {
  const char* name;
  std::vector<const char*> parts;
};
const std::vector<Fused>& phi3_fused() {
  static const std::vector<Fused> f = {
      {"self_attn.qkv_proj.weight",
       {"self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"}},
      {"mlp.gate_up_proj.weight", {"mlp.gate_proj.weight", "mlp.up_proj.weight"}}};
  return f;
}

void fuse_phi3(TensorMap& t, int64_t layers) {
  for (int64_t l = 0; l < layers; ++l) {
    const std::string hf = "model.layers." + std::to_string(l) + ".";
    for (const Fused& f : phi3_fused()) {
      std::vector<at::Tensor> parts;
      for (const char* p : f.parts) {
        parts.push_back(t.at(hf + p));
        t.erase(hf + p);
      }
      t[hf + f.name] = torch::cat(parts, 0);
    }
  }
}

// The fused tensors of a Phi-3 checkpoint split into llama's names (views of the read tensors).
TensorMap split_phi3(const TensorMap& hf, const ModelConfig& m, const std::string& origin) {
  TensorMap out = hf;
  const int64_t C = m.head_dim();
  const std::vector<std::vector<int64_t>> sizes = {{m.heads * C, m.kv_heads * C, m.kv_heads * C},
                                                   {m.ffn_hidden, m.ffn_hidden}};
  for (int64_t l = 0; l < m.layers; ++l) {
    const std::string prefix = "model.layers." + std::to_string(l) + ".";
    for (size_t i = 0; i < phi3_fused().size(); ++i) {
      const Fused& f = phi3_fused()[i];
      auto it = out.find(prefix + f.name);
      if (it == out.end())
        throw StageError(origin + ": missing tensor " + prefix + f.name + " (phi3 layout)");
      int64_t rows = 0;
      for (int64_t n : sizes[i]) rows += n;
      if (it->second.dim() != 2 || it->second.size(0) != rows || it->second.size(1) != m.d_model) {
        throw StageError(origin + ": tensor " + prefix + f.name + " has shape " +
                         c10::str(it->second.sizes()) + ", config.json implies [" +
                         std::to_string(rows) + ", " + std::to_string(m.d_model) + "]");
      }
      const auto parts = it->second.split_with_sizes(sizes[i], 0);
      for (size_t p = 0; p < parts.size(); ++p) out[prefix + f.parts[p]] = parts[p];
      out.erase(prefix + f.name);
    }
  }
  return out;
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
  if (f == HfFormat::kPhi3) fuse_phi3(out, m.layers);
  return out;
}

TensorMap from_hf_tensors(const TensorMap& hf_read, const HfModel& model,
                          const std::string& origin) {
  if (model.format == HfFormat::kPhi3) {
    return from_hf_tensors(split_phi3(hf_read, model.model, origin),
                           HfModel{HfFormat::kLlama, model.model, model.logit_scale,
                                   model.hf_tied_embeddings, model.notes},
                           origin);
  }
  const TensorMap& hf = hf_read;
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
