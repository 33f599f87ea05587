// Perplexity and the BTM ensemble on real text (byte-level shards of generated math documents).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/atomic_file.h"
#include "stages/data/math_problems.h"
#include "stages/data/token_shard.h"
#include "stages/eval/perplexity.h"
#include "tests/support/byte_corpus.h"
#include "tests/support/model_configs.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

std::string byte_shard(const testing::TempDir& dir) {
  testing::write_byte_shards(dir.path(), "math", 8000);
  return shard_path(dir.path(), "math", "test");
}

TEST(EvalTest, PerplexityOfAnUntrainedModelIsNearTheVocabulary) {
  testing::TempDir dir;
  torch::manual_seed(0);
  TransformerLm m(testing::small_config(256));
  auto r = perplexity(m, byte_shard(dir), 16);
  EXPECT_EQ(r.windows, 16);
  EXPECT_EQ(r.tokens, 16 * 16);
  EXPECT_NEAR(r.ppl, 256.0, 25.0);  // init std 0.02: nearly uniform logits
  EXPECT_NEAR(std::exp(r.nll), r.ppl, 1e-9);
  EXPECT_GT(r.ppl_stderr, 0);
}

TEST(EvalTest, BtmEnsembleOfIdenticalExpertsIsTheExpert) {
  testing::TempDir dir;
  std::string shard = byte_shard(dir);
  torch::manual_seed(1);
  TransformerLm m(testing::small_config(256));
  std::vector<TransformerLm> members{m, m, m};
  EXPECT_NEAR(ensemble_perplexity(members, shard, 16).nll, perplexity(m, shard, 16).nll, 1e-9);
}

// Per window the Bayesian mixture's log-likelihood is log mean_j p_j(window) >= max_j log p_j - log J,
// so the ensemble's mean NLL is at most the best expert's plus log(J)/T.
TEST(EvalTest, BtmEnsembleIsWithinLogJOfTheBestExpert) {
  testing::TempDir dir;
  std::string shard = byte_shard(dir);
  std::vector<TransformerLm> members;
  double best = 1e9;
  for (int j = 0; j < 3; ++j) {
    torch::manual_seed(10 + j);
    auto c = testing::small_config(256);
    c.init_std = 0.2 * (j + 1);  // experts that disagree
    members.emplace_back(c);
    best = std::min(best, perplexity(members.back(), shard, 16).nll);
  }
  double ens = ensemble_perplexity(members, shard, 16).nll;
  EXPECT_LE(ens, best + std::log(3.0) / 16 + 1e-9);
}

}  // namespace
}  // namespace upcycle::stages
