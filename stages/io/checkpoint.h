// Checkpoints: a directory of weight shards (one model.safetensors when one process wrote it,
// model-0000i-of-0000n.safetensors when n ranks did, each its own part), optional AdamW state
// shards (checkpoint_shards.h), optional extra files, and config.json, the manifest: the format
// version, the model config, the training position and the sha256 and size of every file, so a file
// whose hash disagrees is rejected on load with the path and the reason. A save writes a complete
// new directory beside the old one, the manifest last, and swaps it in by rename: DIR is always
// either the previous checkpoint or the new one, never a mix (DIR.prev bridges the instant between
// the two renames and is recovered on load). Format 1 (one model.safetensors, `weights_sha256`) is
// still read.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/arch/config.h"
#include "stages/io/safetensors.h"
#include "stages/model/transformer.h"

namespace upcycle::stages {

inline constexpr int kCheckpointFormatVersion = 2;
inline constexpr const char* kWeightsFile = "model.safetensors";
inline constexpr const char* kCheckpointConfigFile = "config.json";
/// The weights file's metadata holds the sha256 of the model config they were saved with, so a
/// config.json edited afterwards (rope_theta, say: same shapes, other numbers) is refused on load.
inline constexpr const char* kModelConfigShaKey = "upcycle_model_config_sha256";

std::string model_config_sha256(const ModelConfig& m);

/// A file of the checkpoint as the manifest lists it.
struct ShardFile {
  std::string file;  ///< a plain name inside the checkpoint directory
  std::string sha256;
  uint64_t bytes = 0;
};

struct CheckpointMeta {
  ModelConfig model;
  int64_t step = 0;
  int64_t tokens = 0;
  nlohmann::json extra =
      nlohmann::json::object();              ///< stage-specific (upcycle method, sources, ...)
  std::vector<ShardFile> weights;            ///< filled by save, verified by load
  std::map<std::string, std::string> files;  ///< extra file name -> sha256, filled by save
  std::vector<ShardFile> optimizer;          ///< AdamW state shards (the trainer's); may be empty
};

/// What identifies the weights: the sha256 of the one weights file, or of the shards' list (name
/// and sha256 of each) when there are several.
std::string weights_digest(const CheckpointMeta& meta);

/// Writes the checkpoint (weights, `extra_files` name -> bytes, config.json) and swaps it in as
/// DIR. Returns weights_digest.
std::string save_checkpoint(const std::string& dir, const TensorMap& state, CheckpointMeta meta,
                            const std::map<std::string, std::string>& extra_files = {});
std::string save_checkpoint(const std::string& dir, TransformerLm& model,
                            const CheckpointMeta& meta,
                            const std::map<std::string, std::string>& extra_files = {});

/// DIR.tmp.PID, where the ranks of the process with id `pid` (rank 0's) write a checkpoint.
std::string checkpoint_temp(const std::string& dir, int64_t pid);

/// Starts a save (checkpoint_shards.h step 1; rank 0 alone). Returns checkpoint_temp(dir,
/// getpid()), created empty.
std::string begin_checkpoint(const std::string& dir);

/// The weights file `file` of a checkpoint being written in `tmp`: `tensors` streamed in order,
/// with the sha256 of `model`'s config in its metadata.
ShardFile write_weights_file(const std::string& tmp, const std::string& file,
                             const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                             const ModelConfig& model);

/// Ends a save (rank 0 alone, once every file is written): `meta` lists every shard. Returns
/// weights_digest.
std::string commit_checkpoint(const std::string& dir, const std::string& tmp, CheckpointMeta meta);

/// Throws StageError naming the path unless the file hashes to `sha256` (from the manifest).
void verify_checkpoint_file(const std::string& path, const std::string& sha256);

/// True when DIR (or a DIR.prev left by an interrupted swap) holds a checkpoint config.
bool checkpoint_exists(const std::string& dir);

/// An extra file of the checkpoint, verified against the sha256 in its config. Throws StageError.
std::string read_checkpoint_file(const std::string& dir, const std::string& name);

/// Reads a checkpoint's config.json (not the weights). Throws StageError naming the path and
/// reason.
CheckpointMeta read_checkpoint_meta(const std::string& dir);

/// Reads and verifies a checkpoint's tensors (bf16 weights widened to fp32) and meta. Throws
/// StageError naming the path and reason.
TensorMap load_checkpoint_state(const std::string& dir, CheckpointMeta* meta);

/// Builds the model its config describes and loads the weights; names and shapes must match
/// exactly.
TransformerLm load_model(const std::string& dir, CheckpointMeta* meta = nullptr);

/// Views of the model's parameter data by checkpoint name, in registration order, each FFN's fused
/// w13 as its w1 and w3 (moe_ffn.h).
std::vector<std::pair<std::string, at::Tensor>> state_views(TransformerLm& model);

/// The model's parameters by name (detached), each FFN's fused w13 as its w1 and w3 (moe_ffn.h).
TensorMap state_of(TransformerLm& model);
/// Copies `state` into the model. Throws StageError (naming `origin`) on a missing, extra or
/// mis-shaped tensor.
void load_state_into(TransformerLm& model, const TensorMap& state, const std::string& origin);

}  // namespace upcycle::stages
