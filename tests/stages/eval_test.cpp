// Perplexity and the BTM ensemble on real text (byte-level shards of generated math documents).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/atomic_file.h"
#include "stages/data/math_problems.h"
#include "stages/data/token_shard.h"
#include "stages/data/tokenizer.h"
#include "stages/eval/perplexity.h"
#include "stages/model/layers.h"
#include "stages/train/device.h"
#include "tests/support/byte_corpus.h"
#include "tests/support/model_configs.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

std::string byte_shard(const testing::TempDir& dir) {
  testing::write_byte_shards(dir.path(), "math", 8000);
  return shard_path(dir.path(), "math", "test");
}

// Bits per byte from first principles: a model whose head is zero predicts the uniform
// distribution, so each token costs ln V nats and bpb = tokens * log2(V) / bytes, with bytes the
// UTF-8 length of the documents' text, counted here with std::string::size(). The documents hold
// multi-byte characters, characters the tokenizer never saw (byte fallback), leading spaces and
// newlines; EOS separates them as in prepared shards, and the one window covers every document.
TEST(EvalTest, BitsPerByteOfAUniformModelIsTokensTimesLog2VOverTheTextsBytes) {
  testing::TempDir dir;
  std::string sample;
  for (const auto& d : generate_math_documents(4, 30000)) sample += d.text + "\n";
  sample += "Ünïcödé façade — naïve café, déjà vu.\n";
  core::write_file_atomic(dir / "sample.txt", sample);
  train_tokenizer(dir / "sample.txt", dir / "tok", {400, "bpe", 1, 0});
  Tokenizer tok(dir / "tok.model");
  const std::vector<std::string> docs = {
      "Problem: Compute 12 + 30.\nSolution: 42.", "  two leading spaces, then déjà vu",
      "\nstarts with a newline; 漢字 and 🙂 fall back to bytes", "x"};
  std::vector<uint32_t> ids = {tok.eos_id()};
  int64_t bytes = 0;
  for (const auto& d : docs) {
    for (uint32_t id : tok.encode(d)) ids.push_back(id);
    ids.push_back(tok.eos_id());
    bytes += static_cast<int64_t>(d.size());
  }
  write_token_shard(dir / "test.bin", ids, tok.vocab_size());
  ModelConfig c = testing::small_config(tok.vocab_size());
  c.seq_len = static_cast<int64_t>(ids.size()) - 1;  // one window: every token after the first EOS
  TransformerLm m(c);
  {
    torch::NoGradGuard no_grad;
    m->head_VD.zero_();
  }
  const TokenBytes tb = tok.token_bytes();
  auto r = perplexity(m, dir / "test.bin", 0, &tb);
  const double V = double(tok.vocab_size());
  EXPECT_EQ(r.windows, 1);
  EXPECT_EQ(r.bytes, bytes);
  EXPECT_NEAR(r.nll, std::log(V), 1e-6);
  EXPECT_NEAR(r.bpb, double(r.tokens) * std::log2(V) / double(bytes), 1e-6);
  // Without the table there are no bytes and no bpb.
  EXPECT_EQ(perplexity(m, dir / "test.bin", 0).bytes, 0);
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

// bf16 eval (CPU autocast here, as on CUDA): the NLL follows fp32's within bf16's precision, and
// differs from it (the forward did run in bf16), while the per-token losses are summed in
// fp32/fp64.
TEST(EvalTest, Bf16AutocastPerplexityFollowsFp32) {
  testing::TempDir dir;
  torch::manual_seed(0);
  ModelConfig c = testing::small_config(256);
  c.init_std =
      0.2;  // peaked (confidently wrong) predictions: a perplexity far from the vocabulary's
  TransformerLm m(c);
  const std::string shard = byte_shard(dir);
  auto fp32 = perplexity(m, shard, 16);
  PerplexityResult bf16;
  {
    AutocastScope autocast("cpu", true);
    bf16 = perplexity(m, shard, 16);
  }
  // Far from uniform logits (where bf16 and fp32 would agree trivially): measured about 470 vs 256.
  EXPECT_GT(std::abs(fp32.nll - std::log(256.0)), 0.2);
  EXPECT_NEAR(bf16.nll, fp32.nll, 0.02 * fp32.nll);
  EXPECT_NE(bf16.nll, fp32.nll);
}

// Eval records how each router splits a domain's tokens. Checked against an independent computation
// of the same quantities from the model's own routers on the same windows: the soft attention
// gates' mean (rows sum to 1) and the top-1 FFN's share of tokens (rows sum to 1); dense models
// record none.
TEST(EvalTest, RoutingPerLayerIsRecordedForBothRouters) {
  testing::TempDir dir;
  torch::manual_seed(0);
  ModelConfig c = testing::small_config(256);
  c.attn_experts = 3;
  c.attn_kv = KvMode::kExpert;
  c.ffn_experts = 3;
  c.ffn_top_k = 1;
  c.kv_heads = c.heads;
  TransformerLm m(c);
  const std::string shard = byte_shard(dir);
  auto r = perplexity(m, shard, 8, nullptr, 4);
  ASSERT_EQ(r.attn_gate.size(), 2u);
  ASSERT_EQ(r.ffn_util.size(), 2u);
  // The same windows, by hand: the first layer's attention router on the first block's norm.
  TokenShard s(shard);
  auto idx = torch::empty({8, 16}, torch::kInt64);
  for (int64_t w = 0; w < 8; ++w) s.copy_to(w * 16, 16, idx[w].data_ptr<int64_t>());
  torch::NoGradGuard no_grad;
  auto block = m->blocks[0]->as<BlockImpl>();
  auto h = apply_norm(torch::embedding(m->embed_VD, idx), block->norm1_D, c);
  auto gates = torch::softmax(torch::matmul(h, block->attn->router_ED.t()), -1).mean({0, 1});
  for (int64_t e = 0; e < 3; ++e)
    EXPECT_NEAR(r.attn_gate[0][e], gates[e].item<double>(), 1e-6) << e;
  for (const auto* table : {&r.attn_gate, &r.ffn_util}) {
    for (const auto& row : *table) {
      ASSERT_EQ(row.size(), 3u);
      double sum = 0;
      for (double v : row) sum += v;
      EXPECT_NEAR(sum, 1.0, 1e-6);
    }
  }
  TransformerLm dense(testing::small_config(256));
  auto d = perplexity(dense, shard, 8, nullptr, 4);
  for (const auto& row : d.attn_gate) EXPECT_TRUE(row.empty());
  for (const auto& row : d.ffn_util) EXPECT_TRUE(row.empty());
}

TEST(EvalTest, BtmEnsembleOfIdenticalExpertsIsTheExpert) {
  testing::TempDir dir;
  std::string shard = byte_shard(dir);
  torch::manual_seed(1);
  TransformerLm m(testing::small_config(256));
  std::vector<TransformerLm> members{m, m, m};
  EXPECT_NEAR(ensemble_perplexity(members, shard, 16).nll, perplexity(m, shard, 16).nll, 1e-9);
}

// Per window the Bayesian mixture's log-likelihood is log mean_j p_j(window) >= max_j log p_j - log
// J, so the ensemble's mean NLL is at most the best expert's plus log(J)/T.
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
