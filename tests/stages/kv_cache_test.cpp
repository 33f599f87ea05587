// Incremental decoding with a KV cache computes what the full forward computes, on every attention
// variant: dense MHA and GQA, Mixture-of-Attention with expert or shared K/V, soft or top-k routed,
// in parallel and sequential blocks; greedy generation gives the same tokens with and without it,
// also past seq_len, where the cache is refilled from the last seq_len tokens; and prompts of
// different lengths generated as one left-padded batch give each prompt's own tokens.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "stages/arch/upcycle_config.h"
#include "stages/eval/generate.h"
#include "stages/model/transformer.h"
#include "tests/support/model_configs.h"

namespace upcycle::stages {
namespace {

struct Variant {
  std::string name;
  ModelConfig config;
};

std::vector<Variant> variants() {
  ModelConfig mha = testing::small_config();
  mha.kv_heads = mha.heads;
  ModelConfig gqa = testing::small_config();
  gqa.block = BlockType::kSequential;
  auto moa = [&](const std::string& kv, const std::string& routing, int64_t k,
                 const std::string& block) {
    ModelConfig mix;
    mix.ffn_top_k = 2;
    mix.attn_kv = core::enum_from(kKvModeNames, kv, "attn_kv");
    mix.attn_routing = core::enum_from(kAttnRoutingNames, routing, "attn_routing");
    mix.attn_top_k = k;
    ModelConfig base = testing::small_config();
    base.block = core::enum_from(kBlockNames, block, "block");
    return upcycled_config(UpcycleMethod::kBam, base, mix, 3);
  };
  return {{"dense MHA", mha},
          {"dense GQA, sequential", gqa},
          {"MoA expert KV, soft", moa("expert", "soft", 1, "parallel")},
          {"MoA shared KV, soft", moa("shared", "soft", 1, "parallel")},
          {"MoA expert KV, top-1, sequential", moa("expert", "top_k", 1, "sequential")},
          {"MoA shared KV, top-2", moa("shared", "top_k", 2, "parallel")}};
}

// Random weights large enough that the argmax moves from token to token.
TransformerLm random_model(const ModelConfig& c) {
  torch::manual_seed(7);
  ModelConfig big = c;
  big.init_std = 0.2;
  big.router_init_std = 0.5;
  TransformerLm m(big);
  m->eval();
  return m;
}

// Also: a prefix that only fills the cache (no output head) leaves the cache the full forward
// would, and the last position's logits alone are the full forward's last row.
TEST(KvCacheTest, PrefillThenStepsGiveTheFullForwardsLogits) {
  torch::NoGradGuard no_grad;
  for (const auto& v : variants()) {
    SCOPED_TRACE(v.name);
    TransformerLm m = random_model(v.config);
    auto idx = torch::randint(v.config.vocab, {2, 13});
    auto full_BTV = m->forward(idx).logits_BTV;
    KvCache cache;
    std::vector<at::Tensor> parts{m->forward(idx.narrow(1, 0, 6), &cache).logits_BTV};  // prefill 6
    parts.push_back(m->forward(idx.narrow(1, 6, 3), &cache).logits_BTV);                // 3 at once
    for (int64_t t = 9; t < 13; ++t)
      parts.push_back(m->forward(idx.narrow(1, t, 1), &cache).logits_BTV);
    EXPECT_EQ(cache.length, 13);
    auto cached_BTV = torch::cat(parts, 1);
    EXPECT_TRUE(torch::allclose(cached_BTV, full_BTV, 1e-5, 1e-5))
        << "max abs diff " << (cached_BTV - full_BTV).abs().max().item<double>();

    KvCache headless;
    EXPECT_FALSE(m->forward(idx.narrow(1, 0, 9), &headless, Logits::kNone).logits_BTV.defined());
    EXPECT_EQ(headless.length, 9);
    auto rest_BTV = m->forward(idx.narrow(1, 9, 4), &headless).logits_BTV;
    EXPECT_TRUE(torch::allclose(rest_BTV, full_BTV.narrow(1, 9, 4), 1e-5, 1e-5));
    auto last_BTV = m->forward(idx, nullptr, Logits::kLast).logits_BTV;
    ASSERT_EQ(last_BTV.sizes(), (std::vector<int64_t>{2, 1, v.config.vocab}));
    EXPECT_TRUE(torch::allclose(last_BTV, full_BTV.narrow(1, 12, 1), 1e-5, 1e-5));
  }
}

TEST(KvCacheTest, GreedyGenerationGivesTheSameTokensWithAndWithoutTheCache) {
  for (const auto& v : variants()) {
    SCOPED_TRACE(v.name);
    TransformerLm m = random_model(v.config);
    std::vector<uint32_t> prompt = {5, 17, 3, 88, 41, 9, 60};
    GreedyOptions opts;
    opts.max_new_tokens = 20;  // 7 + 20 > seq_len 16: the last steps run past the window
    opts.kv_cache = false;
    auto plain = generate_greedy(m, prompt, opts);
    opts.kv_cache = true;
    auto cached = generate_greedy(m, prompt, opts);
    EXPECT_EQ(cached, plain);
    EXPECT_EQ(plain.size(), 20u);
    std::set<uint32_t> distinct(plain.begin(), plain.end());
    EXPECT_GT(distinct.size(), 2u) << "a degenerate model tests little";
  }
}

TEST(KvCacheTest, LeftPaddedRowsComputeWhatEachRowComputesAlone) {
  torch::NoGradGuard no_grad;
  for (const auto& v : variants()) {
    SCOPED_TRACE(v.name);
    TransformerLm m = random_model(v.config);
    auto a = torch::randint(v.config.vocab, {1, 9}), b = torch::randint(v.config.vocab, {1, 5});
    auto alone_a = m->forward(a).logits_BTV, alone_b = m->forward(b).logits_BTV;
    KvCache cache;
    cache.pad_B = torch::tensor({int64_t{0}, int64_t{4}});
    auto batch = torch::cat({a, torch::cat({torch::zeros({1, 4}, torch::kInt64), b}, 1)}, 0);
    auto both = m->forward(batch, &cache).logits_BTV;
    EXPECT_TRUE(torch::allclose(both[0], alone_a[0], 1e-5, 1e-5));
    EXPECT_TRUE(torch::allclose(both[1].narrow(0, 4, 5), alone_b[0], 1e-5, 1e-5))
        << (both[1].narrow(0, 4, 5) - alone_b[0]).abs().max().item<double>();
    // One step more for both rows, from the cache.
    auto next = torch::randint(v.config.vocab, {2, 1});
    auto step = m->forward(next, &cache).logits_BTV;
    auto alone_b2 = m->forward(torch::cat({b, next[1].unsqueeze(0)}, 1)).logits_BTV;
    EXPECT_TRUE(torch::allclose(step[1][0], alone_b2[0][-1], 1e-5, 1e-5));
  }
}

TEST(KvCacheTest, BatchedGreedyGenerationGivesEachPromptsOwnTokens) {
  for (const auto& v : variants()) {
    SCOPED_TRACE(v.name);
    TransformerLm m = random_model(v.config);
    const std::vector<std::vector<uint32_t>> prompts = {
        {5, 17, 3, 88, 41, 9, 60}, {12}, {7, 7, 30, 2}};
    GreedyOptions opts;
    opts.max_new_tokens = 9;  // the longest prompt + 9 = seq_len: one batch
    opts.stop = [](size_t row, const std::vector<uint32_t>& gen) {
      return row == 2 && gen.size() == 4;
    };
    auto batched = generate_greedy_batch(m, prompts, opts);
    ASSERT_EQ(batched.size(), 3u);
    for (size_t r = 0; r < prompts.size(); ++r) {
      GreedyOptions one = opts;
      one.kv_cache = false;
      one.stop = [&](size_t, const std::vector<uint32_t>& gen) { return opts.stop(r, gen); };
      EXPECT_EQ(batched[r], generate_greedy(m, prompts[r], one)) << "prompt " << r;
    }
    EXPECT_EQ(batched[2].size(), 4u);
    opts.max_new_tokens = 12;  // past seq_len: one prompt at a time, the same tokens
    auto long_batched = generate_greedy_batch(m, prompts, opts);
    EXPECT_EQ(std::vector<uint32_t>(long_batched[0].begin(), long_batched[0].begin() + 9),
              batched[0]);
  }
}

TEST(KvCacheTest, GenerationStopsAtEosAndAtTheStopPredicate) {
  TransformerLm m = random_model(variants()[2].config);
  std::vector<uint32_t> prompt = {5, 17, 3};
  GreedyOptions opts;
  opts.max_new_tokens = 10;
  auto all = generate_greedy(m, prompt, opts);
  ASSERT_EQ(all.size(), 10u);
  opts.eos = all[4];
  auto until_eos = generate_greedy(m, prompt, opts);
  auto first = std::find(all.begin(), all.end(), all[4]);
  EXPECT_EQ(until_eos, std::vector<uint32_t>(all.begin(), first));
  opts.eos = -1;
  opts.stop = [](size_t, const std::vector<uint32_t>& gen) { return gen.size() == 3; };
  EXPECT_EQ(generate_greedy(m, prompt, opts), std::vector<uint32_t>(all.begin(), all.begin() + 3));
}

}  // namespace
}  // namespace upcycle::stages
