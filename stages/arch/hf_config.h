// Hugging Face model configs (config.json) to and from ModelConfig. No LibTorch: the runner reads
// an imported seed's config at plan time. The weights' side is hf_weights.h; the layouts are in
// docs/interop.md.
//
//   llama   LlamaForCausalLM: sequential blocks, RMSNorm, RoPE half-split (our convention), GQA,
//           tied or untied embeddings, Llama 3.1's RoPE scaling (rope_scaling llama3).
//   mistral MistralForCausalLM: llama's layout (a sliding window no shorter than the context).
//   phi3    Phi3ForCausalLM: llama's layout with q/k/v and gate/up fused into one tensor each.
//   qwen2   Qwen2ForCausalLM: llama's layout with biases on q, k and v (our qkv_bias).
//   cohere  CohereForCausalLM: parallel blocks with one LayerNorm (BAM's block), RoPE interleaved
//           (q/k rows permuted on the way in and out), logit_scale (folded into an untied head on
//           import; 1 on export).
//   mixtral MixtralForCausalLM: llama's blocks with an MoE FFN in every layer, softmax -> top-k ->
//           renormalise (our topk_then_softmax, or softmax_then_topk with renormalisation).
//   native  upcycle's own layout for what no Hugging Face class computes (BAM's attention experts),
//           also named bam: our tensor names and the ModelConfig under "upcycle_model", with
//           remote code (configuration_bam.py, modeling_bam.py, auto_map) that transformers
//           loads with trust_remote_code; re-imports exactly.
// A model whose options a format cannot express is refused with the reason: an export never writes
// a model that loads but computes something else.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/arch/config.h"

namespace upcycle::stages {

enum class HfFormat { kLlama, kMistral, kPhi3, kQwen2, kCohere, kMixtral, kNative };

inline constexpr int kNativeFormatVersion = 1;

const char* hf_format_name(HfFormat f);
/// "llama" | "mistral" | "phi3" | "qwen2" | "cohere" | "mixtral" | "native" (or "bam"); throws
/// std::invalid_argument
/// listing them.
HfFormat hf_format_from(const std::string& name);
/// Every name hf_format_from takes, in the order docs list them.
std::vector<std::string> hf_format_names();

/// A Hugging Face config read as ours.
struct HfModel {
  HfFormat format = HfFormat::kLlama;
  ModelConfig model;
  double logit_scale =
      1.0;  ///< cohere: logits are scaled by this (folded into an untied head when != 1)
  bool hf_tied_embeddings =
      false;  ///< the checkpoint has no lm_head (model.tied_embeddings may differ)
  std::vector<std::string> notes;  ///< what the import changed on the way (untying, ...)
};

/// Reads a parsed config.json. `seq_len` (the training context) defaults to
/// max_position_embeddings. Throws StageError naming `origin` and the key: an unsupported
/// architecture, an option our model lacks (biases, RoPE scaling other than llama3, sliding
/// windows, QK norm, another activation, partial rotary), an inconsistent shape.
HfModel hf_model_from_config(const nlohmann::json& config, const std::string& origin,
                             std::optional<int64_t> seq_len = std::nullopt);
/// The same from DIR/config.json.
HfModel read_hf_model(const std::string& dir, std::optional<int64_t> seq_len = std::nullopt);

/// What identifies a Hugging Face checkpoint directory cheaply enough to compute at every plan: the
/// sha256 of config.json, tokenizer.model (else tokenizer.json), the shard index and, per
/// safetensors file, its name, size and header (tensor names, dtypes, shapes, offsets). Weights
/// rewritten in place with the same shapes keep the fingerprint: the import job records the full
/// sha256 of what it read. Throws StageError naming a file that cannot be read.
std::string hf_checkpoint_fingerprint(const std::string& dir);

/// Why `m` cannot be written as `f` ("" when it can).
std::string hf_export_refusal(const ModelConfig& m, HfFormat f);
/// Why no Hugging Face format computes `m`: the refusal of the format closest to it ("" when one
/// does).
std::string hf_no_format_reason(const ModelConfig& m);
/// The Hugging Face format that computes `m`: llama (sequential, RMSNorm, dense), cohere (parallel,
/// LayerNorm, dense), mixtral (sequential MoE FFN) or qwen2 (llama's with q/k/v biases); nullopt
/// when none does (use native).
std::optional<HfFormat> hf_format_for(const ModelConfig& m);

struct HfTokenIds {
  int64_t bos = -1, eos = -1, pad = -1;  ///< -1: none
};
/// config.json for `m` written as `f` with weights of `dtype` ("float32", "bfloat16", "float16").
/// Throws StageError with hf_export_refusal's reason when `f` cannot express `m`.
nlohmann::json hf_config_for(const ModelConfig& m, HfFormat f, const std::string& dtype,
                             const HfTokenIds& ids);

}  // namespace upcycle::stages
