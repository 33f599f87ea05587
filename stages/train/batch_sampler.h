// Mixture sampling of training windows: for each row of a batch, a domain drawn by the mixture
// weights, then a uniformly random window of seq_len+1 tokens from that domain's shard. The draw
// for (step, row) depends only on (seed, step, row), where row is the row's index in the global
// batch, so a resumed run, a run with gradient accumulation and a data-parallel run all see exactly
// the same data.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "stages/data/token_shard.h"

namespace upcycle::stages {

class MixtureSampler {
 public:
  /// Opens DATA_DIR/shards/<domain>.<split>.bin for every domain with weight > 0. Throws StageError
  /// when a domain is missing or shorter than one window.
  /// Every token must be below `vocab` (the model's), or batch() throws StageError naming the
  /// shard.
  MixtureSampler(const std::string& data_dir, const std::map<std::string, double>& mix,
                 const std::string& split, int64_t seq_len, uint64_t seed, int64_t vocab);
  /// Returns int64 tokens [rows, seq_len + 1]: rows first_row .. first_row + rows - 1 of the global
  /// batch of optimizer step `step`.
  at::Tensor batch(int64_t step, int64_t first_row, int64_t rows) const;

 private:
  std::vector<std::string> domains_;
  std::vector<double> cumulative_;
  std::vector<TokenShard> shards_;
  int64_t seq_len_;
  uint64_t seed_;
  int64_t vocab_;
};

}  // namespace upcycle::stages
