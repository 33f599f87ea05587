#include "stages/train/batch_sampler.h"

#include <torch/torch.h>

#include <fstream>
#include <random>

#include "core/error.h"
#include "stages/data/data_layout.h"

namespace upcycle::stages {

MixtureSampler::MixtureSampler(const std::string& data_dir,
                               const std::map<std::string, double>& mix, const std::string& split,
                               int64_t seq_len, uint64_t seed, int64_t vocab)
    : seq_len_(seq_len), seed_(seed), vocab_(vocab) {
  double total = 0;
  for (const auto& [domain, w] : mix) {
    if (w < 0) throw StageError("mixture weight of " + domain + " is negative");
    if (w == 0) continue;
    std::string path = shard_path(data_dir, domain, split);
    if (!std::ifstream(path)) {
      throw StageError(path + ": no shard for domain '" + domain +
                       "' (the prepare stage did not "
                       "produce it; is the domain listed under data.domains?)");
    }
    TokenShard shard(path);
    if (shard.size() < seq_len + 1) {
      throw StageError(path + ": " + std::to_string(shard.size()) +
                       " tokens, fewer than one window of " + std::to_string(seq_len + 1));
    }
    domains_.push_back(domain);
    shards_.push_back(std::move(shard));
    total += w;
    cumulative_.push_back(total);
  }
  if (domains_.empty()) throw StageError("the data mixture has no domain with positive weight");
  for (auto& c : cumulative_) c /= total;
}

at::Tensor MixtureSampler::batch(int64_t step, int64_t first_row, int64_t rows) const {
  auto out = torch::empty({rows, seq_len_ + 1}, torch::kInt64);
  int64_t* p = out.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    // One generator per (step, global row): order-independent and cheap to reconstruct.
    const int64_t row = first_row + r;
    std::seed_seq seq{uint32_t(seed_),      uint32_t(seed_ >> 32), uint32_t(step),
                      uint32_t(step >> 32), uint32_t(row),         uint32_t(row >> 32)};
    std::mt19937_64 rng(seq);
    double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    size_t d = 0;
    while (d + 1 < cumulative_.size() && u >= cumulative_[d]) ++d;
    const TokenShard& shard = shards_[d];
    int64_t start = std::uniform_int_distribution<int64_t>(0, shard.size() - seq_len_ - 1)(rng);
    shard.copy_to(start, seq_len_ + 1, p + r * (seq_len_ + 1), vocab_);
  }
  return out;
}

}  // namespace upcycle::stages
