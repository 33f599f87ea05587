#include "stages/eval/generate.h"

#include <torch/torch.h>

#include <stdexcept>

namespace upcycle::stages {

std::vector<uint32_t> generate_greedy(TransformerLm& model, std::vector<uint32_t> ids, const GreedyOptions& opts) {
  if (ids.empty()) throw std::invalid_argument("generate_greedy: empty prompt");
  torch::NoGradGuard no_grad;
  const size_t T = static_cast<size_t>(model->config.seq_len);
  auto as_tensor = [](auto first, auto last) {
    return torch::tensor(std::vector<int64_t>(first, last), torch::kInt64).unsqueeze(0);
  };
  KvCache cache;
  // The last seq_len tokens from position 0, refilling the cache when there is one.
  auto run_window = [&] {
    cache = KvCache{};
    auto start = ids.size() > T ? ids.end() - static_cast<long>(T) : ids.begin();
    return model->forward(as_tensor(start, ids.end()), opts.kv_cache ? &cache : nullptr).logits_BTV[0][-1];
  };
  at::Tensor logits_V = run_window();
  std::vector<uint32_t> gen;
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    const auto next = static_cast<uint32_t>(logits_V.argmax().item<int64_t>());
    if (static_cast<int64_t>(next) == opts.eos) break;
    ids.push_back(next);
    gen.push_back(next);
    if ((opts.stop && opts.stop(gen)) || i + 1 == opts.max_new_tokens) break;
    if (opts.kv_cache && cache.length < static_cast<int64_t>(T)) {
      logits_V = model->forward(as_tensor(ids.end() - 1, ids.end()), &cache).logits_BTV[0][-1];
    } else {
      logits_V = run_window();
    }
  }
  return gen;
}

}  // namespace upcycle::stages
