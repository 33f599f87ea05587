#include "stages/eval/generate.h"

#include <torch/torch.h>

#include <algorithm>
#include <stdexcept>

namespace upcycle::stages {
namespace {

std::vector<uint32_t> generate_one(TransformerLm& model, std::vector<uint32_t> ids, size_t row,
                                   const GreedyOptions& opts) {
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
    return model
        ->forward(as_tensor(start, ids.end()), opts.kv_cache ? &cache : nullptr, Logits::kLast)
        .logits_BTV[0][-1];
  };
  at::Tensor logits_V = run_window();
  std::vector<uint32_t> gen;
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    const auto next = static_cast<uint32_t>(logits_V.argmax().item<int64_t>());
    if (static_cast<int64_t>(next) == opts.eos) break;
    ids.push_back(next);
    gen.push_back(next);
    if ((opts.stop && opts.stop(row, gen)) || i + 1 == opts.max_new_tokens) break;
    if (opts.kv_cache && cache.length < static_cast<int64_t>(T)) {
      logits_V = model->forward(as_tensor(ids.end() - 1, ids.end()), &cache).logits_BTV[0][-1];
    } else {
      logits_V = run_window();
    }
  }
  return gen;
}

}  // namespace

std::vector<uint32_t> generate_greedy(TransformerLm& model, std::vector<uint32_t> prompt,
                                      const GreedyOptions& opts) {
  return generate_one(model, std::move(prompt), 0, opts);
}

std::vector<std::vector<uint32_t>> generate_greedy_batch(
    TransformerLm& model, const std::vector<std::vector<uint32_t>>& prompts,
    const GreedyOptions& opts) {
  size_t longest = 0;
  for (const auto& p : prompts) {
    if (p.empty()) throw std::invalid_argument("generate_greedy_batch: empty prompt");
    longest = std::max(longest, p.size());
  }
  std::vector<std::vector<uint32_t>> gen(prompts.size());
  if (!opts.kv_cache || longest + static_cast<size_t>(opts.max_new_tokens) >
                            static_cast<size_t>(model->config.seq_len)) {
    for (size_t r = 0; r < prompts.size(); ++r) gen[r] = generate_one(model, prompts[r], r, opts);
    return gen;
  }
  torch::NoGradGuard no_grad;
  const auto B = static_cast<int64_t>(prompts.size()), L = static_cast<int64_t>(longest);
  auto idx_BL = torch::zeros({B, L}, torch::kInt64), pad_B = torch::empty({B}, torch::kInt64);
  for (int64_t r = 0; r < B; ++r) {
    const auto& p = prompts[static_cast<size_t>(r)];
    const int64_t pad = L - static_cast<int64_t>(p.size());
    pad_B[r] = pad;
    for (size_t t = 0; t < p.size(); ++t)
      idx_BL[r][pad + static_cast<int64_t>(t)] = static_cast<int64_t>(p[t]);
  }
  KvCache cache;
  cache.pad_B = pad_B;
  auto logits_BV = model->forward(idx_BL, &cache, Logits::kLast).logits_BTV.select(1, -1);
  std::vector<bool> done(prompts.size(), false);
  for (int64_t i = 0; i < opts.max_new_tokens; ++i) {
    auto next_B = logits_BV.argmax(-1).to(torch::kCPU);
    bool all_done = true;
    for (int64_t r = 0; r < B; ++r) {
      const auto ru = static_cast<size_t>(r);
      if (done[ru]) continue;
      const auto next = static_cast<uint32_t>(next_B[r].item<int64_t>());
      if (static_cast<int64_t>(next) == opts.eos) {
        done[ru] = true;
        continue;
      }
      gen[ru].push_back(next);
      done[ru] = (opts.stop && opts.stop(ru, gen[ru])) || i + 1 == opts.max_new_tokens;
      all_done = all_done && done[ru];
    }
    if (all_done) break;
    logits_BV =
        model->forward(next_B.unsqueeze(1), &cache).logits_BTV.select(1, -1);  // done rows: ignored
  }
  return gen;
}

}  // namespace upcycle::stages
