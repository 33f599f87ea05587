#include "stages/eval/perplexity.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "stages/data/token_shard.h"

namespace upcycle::stages {

PerplexityResult perplexity(TransformerLm& model, const std::string& shard_path,
                            int64_t max_windows, int64_t batch) {
  torch::NoGradGuard no_grad;
  TokenShard shard(shard_path);
  const int64_t T = model->config.seq_len;
  int64_t windows = (shard.size() - 1) / T;
  if (windows < 1) {
    throw StageError(shard_path + ": " + std::to_string(shard.size()) +
                     " tokens, fewer than one evaluation window of " + std::to_string(T + 1));
  }
  if (max_windows > 0) windows = std::min(windows, max_windows);
  std::vector<double> window_nll;
  for (int64_t w0 = 0; w0 < windows; w0 += batch) {
    int64_t rows = std::min(batch, windows - w0);
    auto b = torch::empty({rows, T + 1}, torch::kInt64);
    for (int64_t r = 0; r < rows; ++r) shard.copy_to((w0 + r) * T, T + 1, b[r].data_ptr<int64_t>());
    auto logits = model->forward(b.narrow(1, 0, T)).logits_BTV;
    auto nll_BT = torch::nn::functional::cross_entropy(
        logits.reshape({-1, logits.size(-1)}), b.narrow(1, 1, T).reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
    auto per_window = nll_BT.view({rows, T}).to(torch::kFloat64).mean(1);
    for (int64_t r = 0; r < rows; ++r) window_nll.push_back(per_window[r].item<double>());
  }
  PerplexityResult res;
  res.windows = static_cast<int64_t>(window_nll.size());
  res.tokens = res.windows * T;
  double sum = 0, sq = 0;
  for (double x : window_nll) sum += x;
  res.nll = sum / res.windows;  // equal-length windows: the window mean is the token mean
  for (double x : window_nll) sq += (x - res.nll) * (x - res.nll);
  double se = res.windows > 1 ? std::sqrt(sq / (res.windows - 1) / res.windows) : 0.0;
  res.ppl = std::exp(res.nll);
  res.ppl_stderr = res.ppl * se;
  return res;
}

}  // namespace upcycle::stages
