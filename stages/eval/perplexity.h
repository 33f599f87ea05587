// Perplexity on a held-out split: the split's tokens cut into non-overlapping windows of seq_len+1,
// every window fully predicted; ppl = exp(mean token NLL). stderr by the delta method over windows.
#pragma once

#include <cstdint>
#include <string>

#include "stages/model/transformer.h"

namespace upcycle::stages {

struct PerplexityResult {
  double nll = 0;         ///< mean token NLL (nats)
  double ppl = 0;
  double ppl_stderr = 0;  ///< ppl * stderr of the per-window mean NLL
  int64_t tokens = 0;     ///< predicted tokens
  int64_t windows = 0;
};

/// Evaluates `model` on the shard at `shard_path`, at most `max_windows` windows (0 = all), batched
/// by `batch`. Throws StageError when the shard is shorter than one window.
PerplexityResult perplexity(TransformerLm& model, const std::string& shard_path,
                            int64_t max_windows, int64_t batch = 8);

}  // namespace upcycle::stages
