// Whole checkpoints between upcycle's format (checkpoint.h) and Hugging Face's (a directory with
// config.json, safetensors weights, tokenizer files). `upcycle export`, `upcycle import`, the
// import stage and the command stage's {hf} placeholder all come here.
#pragma once

#include <c10/core/ScalarType.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/output_dir.h"
#include "stages/arch/hf_config.h"

namespace upcycle::stages {

struct HfExportOptions {
  HfFormat format = HfFormat::kLlama;
  at::ScalarType dtype = at::kFloat;
  uint64_t max_shard_bytes = uint64_t(5) << 30;  ///< transformers' save_pretrained default
  core::OutputRules out;                         ///< when an existing out_dir may be replaced
};

/// "float32" | "bfloat16" | "float16"; throws std::invalid_argument listing them.
at::ScalarType hf_dtype_from(const std::string& name);

/// Writes the model of `checkpoint_dir` with the SentencePiece model `sp_model` as a Hugging Face
/// checkpoint at `out_dir` (core::OutputDir under options.out: a temp sibling renamed into place
/// when complete; an existing directory only when empty, or upcycle's with force). Throws
/// StageError: the target is refused or the format cannot express the model (nothing is written),
/// or an I/O failure.
void export_hf(const std::string& checkpoint_dir, const std::string& sp_model,
               const std::string& out_dir, const HfExportOptions& options);

struct HfImportResult {
  HfModel model;
  std::string weights_sha256;
};

/// Reads the Hugging Face checkpoint `hf_dir` (config.json, safetensors, tokenizer.model) and saves
/// it as an upcycle checkpoint at `checkpoint_dir`, the tokenizer as its extra file
/// `tokenizer.model`. `seq_len` overrides max_position_embeddings as the training context. Throws
/// StageError naming the file, key or tensor that is wrong.
HfImportResult import_hf(const std::string& hf_dir, const std::string& checkpoint_dir,
                         std::optional<int64_t> seq_len = std::nullopt);

}  // namespace upcycle::stages
