#include "stages/train/batch_sampler.h"

#include <torch/torch.h>

#include <cstdlib>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/log.h"
#include "stages/data/data_layout.h"

namespace upcycle::stages {
namespace {

// SplitMix64's finaliser: a counter-based generator, so a draw costs a few multiplications and
// depends on nothing but its inputs.
uint64_t mix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

double unit(uint64_t h) { return double(h >> 11) * 0x1.0p-53; }  // [0, 1)

uint64_t below(uint64_t h, uint64_t n) {  // [0, n), Lemire's multiply-high
  return uint64_t((unsigned __int128)h * n >> 64);
}

size_t pick(const std::vector<double>& cumulative, double u) {
  size_t i = 0;
  while (i + 1 < cumulative.size() && u >= cumulative[i]) ++i;
  return i;
}

}  // namespace

MixtureSampler::MixtureSampler(const std::string& data_dir,
                               const std::map<std::string, double>& mix, const std::string& split,
                               int64_t seq_len, uint64_t seed, int64_t vocab)
    : split_(split), seq_len_(seq_len), seed_(seed), vocab_(vocab) {
  double total = 0;
  for (const auto& [domain, w] : mix) {
    if (w < 0) throw StageError("mixture weight of " + domain + " is negative");
    if (w == 0) continue;
    const std::string path = shard_path(data_dir, domain, split);
    if (!core::file_exists(path) && !core::file_exists(parts_path(path))) {
      throw StageError(path + ": no shard for domain '" + domain +
                       "' (the prepare stage did not "
                       "produce it; is the domain listed under data.domains?)");
    }
    DomainTokens tokens(path);
    std::vector<int64_t> usable;
    std::vector<double> cumulative;
    double parts_total = 0;
    for (int64_t p = 0; p < tokens.parts(); ++p) {
      if (tokens.part_size(p) < seq_len + 1) {
        if (tokens.parts() > 1)
          core::log_warn(tokens.part_name(p) + ": " + std::to_string(tokens.part_size(p)) +
                         " tokens in the " + split + " split, fewer than one window; left out");
        continue;
      }
      usable.push_back(p);
      parts_total += tokens.weight(p);
      cumulative.push_back(parts_total);
    }
    if (usable.empty()) {
      throw StageError(path + ": " + std::to_string(tokens.size()) +
                       " tokens, fewer than one window of " + std::to_string(seq_len + 1) +
                       " in any of its " + std::to_string(tokens.parts()) + " file(s)");
    }
    for (auto& c : cumulative) c /= parts_total;
    domains_.push_back(domain);
    tokens_.push_back(std::move(tokens));
    parts_.push_back(std::move(usable));
    part_cumulative_.push_back(std::move(cumulative));
    domain_weight_.push_back(w);
    total += w;
    cumulative_.push_back(total);
  }
  if (domains_.empty()) throw StageError("the data mixture has no domain with positive weight");
  for (auto& c : cumulative_) c /= total;
  for (auto& w : domain_weight_) w /= total;
}

MixtureSampler::Draw MixtureSampler::draw(int64_t sample, bool with_start) const {
  const uint64_t h = mix64(seed_ ^ mix64(uint64_t(sample)));
  Draw d;
  d.domain = pick(cumulative_, unit(h));
  const size_t p = pick(part_cumulative_[d.domain], unit(mix64(h + 1)));
  d.part = parts_[d.domain][p];
  if (with_start) {
    const int64_t room = tokens_[d.domain].part_size(d.part) - seq_len_;  // window starts
    d.start = int64_t(below(mix64(h + 2), uint64_t(room)));
  }
  return d;
}

at::Tensor MixtureSampler::batch(int64_t first_sample, int64_t rows) const {
  auto out = torch::empty({rows, seq_len_ + 1}, torch::kInt64);
  int64_t* p = out.data_ptr<int64_t>();
  static const char* trace = std::getenv("UPCYCLE_TRACE_SAMPLES");
  std::string lines;
  for (int64_t r = 0; r < rows; ++r) {
    const Draw d = draw(first_sample + r, true);
    tokens_[d.domain].copy_part(d.part, d.start, seq_len_ + 1, p + r * (seq_len_ + 1), vocab_);
    if (trace)
      lines += split_ + " " + std::to_string(first_sample + r) + " " + domains_[d.domain] + " " +
               std::to_string(d.part) + " " + std::to_string(d.start) + "\n";
  }
  if (trace && !lines.empty()) std::ofstream(trace, std::ios::app) << lines << std::flush;
  return out;
}

std::vector<RealisedPart> MixtureSampler::realised(int64_t samples) const {
  std::vector<std::vector<int64_t>> counts(domains_.size());
  for (size_t d = 0; d < domains_.size(); ++d) counts[d].assign(tokens_[d].parts(), 0);
  for (int64_t i = 0; i < samples; ++i) {
    const Draw d = draw(i, false);
    ++counts[d.domain][d.part];
  }
  std::vector<RealisedPart> out;
  for (size_t d = 0; d < domains_.size(); ++d) {
    double parts_total = 0;
    for (int64_t p : parts_[d]) parts_total += tokens_[d].weight(p);
    for (int64_t p : parts_[d]) {
      out.push_back({domains_[d], tokens_[d].part_name(p),
                     domain_weight_[d] * tokens_[d].weight(p) / parts_total, counts[d][p]});
    }
  }
  return out;
}

}  // namespace upcycle::stages
