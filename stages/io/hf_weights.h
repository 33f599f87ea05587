// Tensors between upcycle's names and layouts and a Hugging Face architecture's (hf_config.h lists
// the formats). One table of rows maps each of our tensors to its Hugging Face tensor(s):
//   embed -> model.embed_tokens.weight, final_norm -> model.norm.weight, head -> lm_head.weight
//   blocks.L.norm1 -> model.layers.L.input_layernorm.weight (norm2 -> post_attention_layernorm)
//   blocks.L.attn.{wq,wk,wv,wo}[0] -> model.layers.L.self_attn.{q,k,v,o}_proj.weight
//   blocks.L.ffn.{w1,w3,w2}[0] -> model.layers.L.mlp.{gate,up,down}_proj.weight
//   qwen2: llama's, and blocks.L.attn.{bq,bk,bv} -> model.layers.L.self_attn.{q,k,v}_proj.bias
//   phi3: llama's, with q/k/v in one self_attn.qkv_proj and gate/up in one mlp.gate_up_proj
//   mixtral: blocks.L.ffn.router -> model.layers.L.block_sparse_moe.gate.weight,
//            blocks.L.ffn.{w1,w3,w2}[e] ->
//            model.layers.L.block_sparse_moe.experts.e.{w1,w3,w2}.weight
// Cohere's RoPE rotates interleaved pairs (2i, 2i+1) where ours rotates (i, i + C/2): its q/k rows
// are ours permuted within each head. Native is our names unchanged.
#pragma once

#include <string>

#include "stages/arch/hf_config.h"
#include "stages/io/safetensors.h"

namespace upcycle::stages {

/// Our tensors as `f`'s, converted to `dtype`. Throws StageError with hf_export_refusal's reason
/// when `f` cannot express `m`.
TensorMap to_hf_tensors(const TensorMap& ours, const ModelConfig& m, HfFormat f,
                        at::ScalarType dtype);

/// A Hugging Face checkpoint's tensors as ours, in float32. Throws StageError naming `origin` and
/// the tensor: one missing, one with an unexpected shape, or one the architecture does not have
/// (biases, say). Native tensors pass through unchecked (load_state_into checks them).
TensorMap from_hf_tensors(const TensorMap& hf, const HfModel& model, const std::string& origin);

}  // namespace upcycle::stages
