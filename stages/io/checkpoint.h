// Checkpoints: a directory holding model.safetensors and config.json. config.json is written last and
// records the format version, the model config, the training position and the safetensors sha256, so
// a directory without it, or whose hash disagrees, is rejected on load with the path and the reason.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "stages/io/safetensors.h"
#include "stages/model/config.h"
#include "stages/model/transformer.h"

namespace upcycle::stages {

inline constexpr int kCheckpointFormatVersion = 1;
inline constexpr const char* kWeightsFile = "model.safetensors";
inline constexpr const char* kCheckpointConfigFile = "config.json";

struct CheckpointMeta {
  ModelConfig model;
  int64_t step = 0;
  int64_t tokens = 0;
  nlohmann::json extra = nlohmann::json::object();  ///< stage-specific (upcycle method, sources, ...)
  std::string weights_sha256;                       ///< filled by save, verified by load
};

/// Writes DIR/model.safetensors then DIR/config.json, each atomically. Returns the weights' sha256.
std::string save_checkpoint(const std::string& dir, const TensorMap& state, CheckpointMeta meta);
std::string save_checkpoint(const std::string& dir, TransformerLm& model, const CheckpointMeta& meta);

/// Reads and verifies a checkpoint's tensors and meta. Throws StageError naming the path and reason.
TensorMap load_checkpoint_state(const std::string& dir, CheckpointMeta* meta);

/// Builds the model its config describes and loads the weights; names and shapes must match exactly.
TransformerLm load_model(const std::string& dir, CheckpointMeta* meta = nullptr);

/// The model's parameters by name (detached views).
TensorMap state_of(TransformerLm& model);
/// Copies `state` into the model. Throws StageError (naming `origin`) on a missing, extra or
/// mis-shaped tensor.
void load_state_into(TransformerLm& model, const TensorMap& state, const std::string& origin);

}  // namespace upcycle::stages
