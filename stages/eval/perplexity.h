// Perplexity on a held-out split: the split's tokens cut into non-overlapping windows of seq_len+1,
// every window fully predicted; ppl = exp(mean token NLL). stderr by the delta method over windows.
// Bits per byte, which does not depend on the tokenizer: bpb = nll * tokens / (bytes * ln 2), with
// `bytes` the UTF-8 bytes the predicted tokens cover (TokenBytes, stages/data/tokenizer.h); its
// stderr scales the NLL's by the same factor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "stages/arch/memory.h"
#include "stages/data/tokenizer.h"
#include "stages/model/transformer.h"

namespace upcycle::stages {

struct PerplexityResult {
  double nll = 0;  ///< mean token NLL (nats)
  double ppl = 0;
  double ppl_stderr = 0;  ///< ppl * stderr of the per-window mean NLL
  int64_t tokens = 0;     ///< predicted tokens
  int64_t windows = 0;
  int64_t bytes = 0;  ///< UTF-8 bytes the predicted tokens cover; 0 without a TokenBytes
  double bpb = 0, bpb_stderr = 0;
  /// Routing on this split, per layer and expert, averaged over windows: the fraction of tokens
  /// each FFN expert received, and the attention router's mean gate (empty rows for dense layers;
  /// both empty for a BTM ensemble).
  std::vector<std::vector<double>> ffn_util, attn_gate;
};

/// Evaluates `model` on the shard at `shard_path` (or the files of its parts list, one after the
/// other; domain_tokens.h), at most `max_windows` windows (0 = all), batched
/// by `batch`; bytes and bpb when `bytes` is given. Throws StageError when the shard is shorter
/// than one window.
PerplexityResult perplexity(TransformerLm& model, const std::string& shard_path,
                            int64_t max_windows, const TokenBytes* bytes = nullptr,
                            int64_t batch = kEvalBatchWindows);

/// BTM ensemble perplexity (Li et al. 2022): the experts' next-token distributions mixed with the
/// per-context domain posterior by Bayes' rule under a uniform prior,
///   p(x_t | x_<t) = sum_j p_j(x_t | x_<t) w_j(t),   w_j(t) ∝ prod_{s<t} p_j(x_s | x_<s),
/// so a window's ensemble log-likelihood is log mean_j p_j(window). Same windows as perplexity().
PerplexityResult ensemble_perplexity(std::vector<TransformerLm>& experts,
                                     const std::string& shard_path, int64_t max_windows,
                                     const TokenBytes* bytes = nullptr,
                                     int64_t batch = kEvalBatchWindows);

}  // namespace upcycle::stages
