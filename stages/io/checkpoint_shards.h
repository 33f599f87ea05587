// A checkpoint written by several processes at once (the trainer's data-parallel ranks), each
// streaming its own part to disk, so no process ever holds the whole model or optimizer state as
// bytes. The steps, in order:
//   1. rank 0: begin_checkpoint(DIR) (checkpoint.h) recovers an interrupted swap, removes the temps
//   of dead
//      attempts and creates the temp directory (DIR.tmp.PID), which every rank then writes into;
//   2. every rank: write_weight_shard and write_optimizer_shard (file names carry rank and world),
//      each file fsynced and renamed into the temp;
//   3. rank 0, once every rank's files are durable: commit_checkpoint (checkpoint.h) writes the
//   manifest
//      (config.json, listing every shard's sha256) into the temp and swaps the temp in as DIR.
// A process killed before step 3 leaves DIR as it was (the previous checkpoint) and a temp without
// a manifest, which the next begin_checkpoint removes.
//
// AdamW state is kept as pieces: elements [lo, lo + n) of one parameter's flattened moments, named
// "exp_avg:LO:PARAM" and "exp_avg_sq:LO:PARAM" in the shard files (and "master:LO:PARAM", the fp32
// master weights, when the weights are bf16), whose metadata holds each
// parameter's step count ("steps": a JSON object). Any process layout (replicated,
// ZeRO-1/2 over any number of ranks) writes the pieces it holds and reads back the ranges it needs,
// so a checkpoint resumes on any number of ranks under any layout.
#pragma once

#include <ATen/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "stages/io/checkpoint.h"

namespace upcycle::stages {

/// Cuts items of the given sizes, in order, into `parts` contiguous runs of about equal total
/// size: run r is items [bounds[r], bounds[r + 1]). Every run may be empty but the bounds cover
/// all items.
std::vector<size_t> split_evenly(const std::vector<int64_t>& sizes, int parts);

/// The names of rank `rank`'s files among `world` ranks: model.safetensors and
/// optimizer.safetensors for one rank, model-0000R-of-0000W.safetensors (1-based) for several.
std::string weight_shard_name(int rank, int world);
std::string optimizer_shard_name(int rank, int world);

/// AdamW's moments and the fp32 master weights (of bf16 weights), as the shard files name them.
inline constexpr const char* kMomentNames[3] = {"exp_avg", "exp_avg_sq", "master"};

/// Step 2: this rank's part (split_evenly by bytes) of the model's weights, into `tmp`.
ShardFile write_weight_shard(const std::string& tmp, TransformerLm& model, int rank, int world);

struct MomentPiece {
  std::string param;               ///< the parameter's name (model.named_parameters)
  int64_t lo = 0;                  ///< the first flat element
  at::Tensor exp_avg, exp_avg_sq;  ///< 1-D, equal lengths
  at::Tensor master;               ///< 1-D fp32 master weights, or undefined
  int64_t step = 0;                ///< AdamW's step count for the parameter
};

/// Step 2: this rank's AdamW pieces, into `tmp`.
ShardFile write_optimizer_shard(const std::string& tmp, const std::vector<MomentPiece>& pieces,
                                int rank, int world);

/// Reads ranges of AdamW moments from a checkpoint's optimizer shards, whatever layout wrote them.
/// Every shard's header is read at construction; a shard's sha256 is verified the first time a
/// range needs its data.
class OptimizerStateReader {
 public:
  OptimizerStateReader(const std::string& dir, const CheckpointMeta& meta);
  ~OptimizerStateReader();
  /// Elements [lo, lo + n) of `param`'s `which` (kMomentNames), fp32 on the
  /// CPU; undefined when the checkpoint holds no state for `param` (it never took a step). Throws
  /// StageError when the pieces cover the range only in part or a file is corrupt.
  at::Tensor read(const std::string& param, const std::string& which, int64_t lo, int64_t n);
  /// AdamW's step count of `param` (0 without state).
  int64_t step(const std::string& param) const;

 private:
  struct Piece {
    size_t file;
    int64_t lo, n;
    std::string name;  ///< the tensor in the file
  };

  std::string dir_;
  std::vector<ShardFile> files_;
  std::vector<bool> verified_;
  std::vector<std::unique_ptr<SafetensorsFile>> open_;
  std::map<std::string, std::vector<Piece>> pieces_;  ///< "which:param" -> pieces
  std::map<std::string, int64_t> steps_;
};

}  // namespace upcycle::stages
