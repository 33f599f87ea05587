// Incremental decoding with a KV cache computes what the full forward computes, on every attention
// variant: dense MHA and GQA, Mixture-of-Attention with expert or shared K/V, soft or top-k routed, in
// parallel and sequential blocks; and greedy generation gives the same tokens with and without it,
// also past seq_len, where the cache is refilled from the last seq_len tokens.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <set>

#include "stages/eval/generate.h"
#include "stages/model/transformer.h"
#include "stages/upcycle/upcycle_config.h"
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
  gqa.block = "sequential";
  auto moa = [&](const std::string& kv, const std::string& routing, int64_t k, const std::string& block) {
    ModelConfig mix;
    mix.ffn_top_k = 2;
    mix.attn_kv = kv;
    mix.attn_routing = routing;
    mix.attn_top_k = k;
    ModelConfig base = testing::small_config();
    base.block = block;
    return upcycled_config("bam", base, mix, 3);
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

TEST(KvCacheTest, PrefillThenStepsGiveTheFullForwardsLogits) {
  torch::NoGradGuard no_grad;
  for (const auto& v : variants()) {
    SCOPED_TRACE(v.name);
    TransformerLm m = random_model(v.config);
    auto idx = torch::randint(v.config.vocab, {2, 13});
    auto full_BTV = m->forward(idx).logits_BTV;
    KvCache cache;
    std::vector<at::Tensor> parts{m->forward(idx.narrow(1, 0, 6), &cache).logits_BTV};  // prefill 6
    parts.push_back(m->forward(idx.narrow(1, 6, 3), &cache).logits_BTV);                 // 3 at once
    for (int64_t t = 9; t < 13; ++t) parts.push_back(m->forward(idx.narrow(1, t, 1), &cache).logits_BTV);
    EXPECT_EQ(cache.length, 13);
    auto cached_BTV = torch::cat(parts, 1);
    EXPECT_TRUE(torch::allclose(cached_BTV, full_BTV, 1e-5, 1e-5))
        << "max abs diff " << (cached_BTV - full_BTV).abs().max().item<double>();
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
  opts.stop = [](const std::vector<uint32_t>& gen) { return gen.size() == 3; };
  EXPECT_EQ(generate_greedy(m, prompt, opts), std::vector<uint32_t>(all.begin(), all.begin() + 3));
}

}  // namespace
}  // namespace upcycle::stages
