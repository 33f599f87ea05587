// Blend sampling of training windows, as Megatron's --data-path 0.3 a 0.7 b does: sample i of a
// run draws a domain by the stage's mixture weights, a file (part) of that domain by its weight in
// the domain's blend, and a uniformly random window of seq_len+1 tokens in it. Each draw depends
// only on (seed, i), where i = step * global batch + row counts the samples consumed, so a resumed
// run, a run with gradient accumulation and a data-parallel run on any number of ranks see exactly
// the same samples, and the realised blend of a run is a replay of its draws.
#pragma once

#include <ATen/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "stages/data/domain_tokens.h"

namespace upcycle::stages {

class MixtureSampler {
 public:
  /// Opens each domain with weight > 0 (DATA_DIR/shards/<domain>.<split>, domain_tokens.h). Parts
  /// shorter than one window are left out with a warning; a domain left with none, or missing, is
  /// a StageError. Every token must be below `vocab` (the model's), or batch() throws StageError
  /// naming the file.
  MixtureSampler(const std::string& data_dir, const std::map<std::string, double>& mix,
                 const std::string& split, int64_t seq_len, uint64_t seed, int64_t vocab);
  /// Returns int64 tokens [rows, seq_len + 1]: samples first_sample .. first_sample + rows - 1.
  /// With UPCYCLE_TRACE_SAMPLES=FILE, appends "split sample domain part start" lines to FILE
  /// (tests).
  at::Tensor batch(int64_t first_sample, int64_t rows) const;
  /// The draws of samples [0, samples), counted by domain and part.
  std::vector<RealisedPart> realised(int64_t samples) const;

 private:
  struct Draw {
    size_t domain = 0;
    int64_t part = 0, start = 0;
  };
  Draw draw(int64_t sample, bool with_start) const;

  std::vector<std::string> domains_;
  std::vector<double> cumulative_, domain_weight_;
  std::vector<DomainTokens> tokens_;
  std::vector<std::vector<int64_t>> parts_;           ///< per domain: its usable parts
  std::vector<std::vector<double>> part_cumulative_;  ///< per domain, over parts_
  std::string split_;
  int64_t seq_len_;
  uint64_t seed_;
  int64_t vocab_;
};

}  // namespace upcycle::stages
