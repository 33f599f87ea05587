// Checkpoints: a directory holding model.safetensors, optional extra files (the trainer's optimizer
// state) and config.json, which records the format version, the model config, the training position
// and the sha256 of every file, so a file whose hash disagrees is rejected on load with the path
// and the reason. A save writes a complete new directory beside the old one and swaps it in by
// rename: DIR is always either the previous checkpoint or the new one, never a mix (DIR.prev
// bridges the instant between the two renames and is recovered on load).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "stages/arch/config.h"
#include "stages/io/safetensors.h"
#include "stages/model/transformer.h"

namespace upcycle::stages {

inline constexpr int kCheckpointFormatVersion = 1;
inline constexpr const char* kWeightsFile = "model.safetensors";
inline constexpr const char* kCheckpointConfigFile = "config.json";
/// The weights file's metadata holds the sha256 of the model config they were saved with, so a
/// config.json edited afterwards (rope_theta, say: same shapes, other numbers) is refused on load.
inline constexpr const char* kModelConfigShaKey = "upcycle_model_config_sha256";

std::string model_config_sha256(const ModelConfig& m);

struct CheckpointMeta {
  ModelConfig model;
  int64_t step = 0;
  int64_t tokens = 0;
  nlohmann::json extra =
      nlohmann::json::object();              ///< stage-specific (upcycle method, sources, ...)
  std::string weights_sha256;                ///< filled by save, verified by load
  std::map<std::string, std::string> files;  ///< extra file name -> sha256, filled by save
};

/// Writes the checkpoint (weights, `extra_files` name -> bytes, config.json) and swaps it in as
/// DIR. Returns the weights' sha256.
std::string save_checkpoint(const std::string& dir, const TensorMap& state, CheckpointMeta meta,
                            const std::map<std::string, std::string>& extra_files = {});
std::string save_checkpoint(const std::string& dir, TransformerLm& model,
                            const CheckpointMeta& meta,
                            const std::map<std::string, std::string>& extra_files = {});

/// True when DIR (or a DIR.prev left by an interrupted swap) holds a checkpoint config.
bool checkpoint_exists(const std::string& dir);

/// An extra file of the checkpoint, verified against the sha256 in its config. Throws StageError.
std::string read_checkpoint_file(const std::string& dir, const std::string& name);

/// Reads a checkpoint's config.json (not the weights). Throws StageError naming the path and
/// reason.
CheckpointMeta read_checkpoint_meta(const std::string& dir);

/// Reads and verifies a checkpoint's tensors and meta. Throws StageError naming the path and
/// reason.
TensorMap load_checkpoint_state(const std::string& dir, CheckpointMeta* meta);

/// Builds the model its config describes and loads the weights; names and shapes must match
/// exactly.
TransformerLm load_model(const std::string& dir, CheckpointMeta* meta = nullptr);

/// The model's parameters by name (detached), each FFN's fused w13 as its w1 and w3 (moe_ffn.h).
TensorMap state_of(TransformerLm& model);
/// Copies `state` into the model. Throws StageError (naming `origin`) on a missing, extra or
/// mis-shaped tensor.
void load_state_into(TransformerLm& model, const TensorMap& state, const std::string& origin);

}  // namespace upcycle::stages
