// Shapes, causality, gradient flow and parameter accounting of the model library.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <functional>

#include "stages/arch/accounting.h"
#include "stages/arch/upcycle_config.h"
#include "stages/model/transformer.h"
#include "tests/support/model_configs.h"
#include "tests/support/tensor_asserts.h"

namespace upcycle::stages {
namespace {

ModelConfig tiny(const std::string& block = "parallel") {
  ModelConfig c = testing::small_config();
  c.block = core::enum_from(kBlockNames, block, "block");
  return c;
}

ModelConfig bam(int64_t n, const std::string& block = "parallel") {
  ModelConfig mix;
  mix.ffn_top_k = 2;
  return upcycled_config(UpcycleMethod::kBam, tiny(block), mix, n);
}

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override { torch::manual_seed(0); }
};

TEST_F(ModelTest, ShapesForEveryVariant) {
  for (const auto& c : {tiny(), tiny("sequential"), bam(3), bam(3, "sequential")}) {
    TransformerLm m(c);
    auto idx = torch::randint(c.vocab, {2, 11});
    auto out = m->forward(idx);
    EXPECT_EQ(out.logits_BTV.sizes(), (std::vector<int64_t>{2, 11, c.vocab}));
    EXPECT_EQ(out.ffn_stats.size(), static_cast<size_t>(c.layers));
  }
}

TEST_F(ModelTest, ParameterCountMatchesAccounting) {
  ModelConfig shared = bam(3);
  shared.attn_kv = KvMode::kShared;
  ModelConfig every_other = bam(4);
  every_other.moe_every = 2;
  ModelConfig biased = tiny("sequential"), biased_bam = bam(3), biased_shared = shared;
  for (ModelConfig* c : {&biased, &biased_bam, &biased_shared}) c->qkv_bias = true;
  for (const auto& c : {tiny(), tiny("sequential"), bam(3), shared, every_other, biased, biased_bam,
                        biased_shared}) {
    TransformerLm m(c);
    int64_t n = 0;
    for (const auto& p : m->parameters()) n += p.numel();
    EXPECT_EQ(n, count_params(c).total) << to_json(c).dump();
  }
}

TEST_F(ModelTest, PositionTNeverSeesLaterTokens) {
  for (const auto& c : {tiny(), bam(3)}) {
    TransformerLm m(c);
    auto idx = torch::randint(c.vocab, {1, 12});
    auto changed = idx.clone();
    changed.index_put_({0, torch::indexing::Slice(7)},
                       (idx.index({0, torch::indexing::Slice(7)}) + 1) % c.vocab);
    auto a = m->forward(idx).logits_BTV.narrow(1, 0, 7);
    auto b = m->forward(changed).logits_BTV.narrow(1, 0, 7);
    EXPECT_TRUE(testing::tensors_near(a, b, 1e-6));
    auto later = (m->forward(idx).logits_BTV.narrow(1, 7, 5) -
                  m->forward(changed).logits_BTV.narrow(1, 7, 5))
                     .abs()
                     .max();
    EXPECT_GT(later.item<double>(), 1e-4);  // and it does see earlier ones
  }
}

TEST_F(ModelTest, GradientsReachRoutersAndSelectedExperts) {
  ModelConfig c = bam(3);
  TransformerLm m(c);
  auto idx = torch::randint(c.vocab, {4, 16});
  auto out = m->forward(idx);
  (lm_loss(out.logits_BTV, idx) + out.aux_loss).backward();
  for (const auto& p : m->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    if (p.key().find("router") != std::string::npos) {
      EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0) << p.key();
    }
  }
  // Every expert that received tokens got a gradient on its FFN weights.
  for (int64_t l = 0; l < c.layers; ++l) {
    auto util = out.ffn_stats[l].util_E;
    auto g = m->named_parameters()["blocks." + std::to_string(l) + ".ffn.w13"].grad();
    for (int64_t e = 0; e < c.ffn_experts; ++e) {
      bool routed = util[e].item<double>() > 0;
      EXPECT_EQ(routed, g[e].abs().sum().item<double>() > 0) << "layer " << l << " expert " << e;
    }
  }
}

// The sync-free dispatch modes (moe_ffn.h) compute what the per-expert loop computes: outputs and
// every parameter's gradient, with an expert that receives no token (padded) and in both routings.
TEST_F(ModelTest, MoeDispatchModesAgreeWithTheLoop) {
  for (const char* routing : {"softmax_then_topk", "topk_then_softmax"}) {
    ModelConfig c = tiny();
    c.ffn_experts = 5;
    c.ffn_top_k = 2;
    c.ffn_routing = core::enum_from(kFfnRoutingNames, routing, "ffn_routing");
    MoeFfn ffn(c, 5);
    {
      torch::NoGradGuard g;
      ffn->router_ED.select(1, 0).zero_();
      ffn->router_ED[4][0] = -100.0;  // with feature 0 set to 1 below, no token picks expert 4
    }
    auto h = torch::randn({3, 7, c.d_model});
    h.select(2, 0).fill_(1.0);
    auto run = [&](MoeDispatch mode) {
      ffn->zero_grad();
      RouterStats st;
      auto y = ffn->forward(h, &st, mode);
      (y.pow(2).sum() + st.load_balance).backward();
      return std::vector<at::Tensor>{y.detach(), st.util_E, ffn->w13_E2FD.grad().clone(),
                                     ffn->w2_EDF.grad().clone(), ffn->router_ED.grad().clone()};
    };
    auto loop = run(MoeDispatch::kLoop), padded = run(MoeDispatch::kPadded);
    for (size_t i = 0; i < loop.size(); ++i)
      EXPECT_TRUE(testing::tensors_near(padded[i], loop[i], 1e-5, 1e-4)) << routing << " " << i;
    if (grouped_mm_available()) {  // LibTorch's CPU _grouped_mm has a forward only: compare outputs
      torch::NoGradGuard g;
      auto grouped = ffn->forward(h, nullptr, MoeDispatch::kGrouped);
      EXPECT_TRUE(testing::tensors_near(grouped, loop[0], 2e-2, 2e-2)) << routing << " (bf16)";
    }
  }
}

TEST_F(ModelTest, LoadBalanceLossOfUniformRoutingIsOne) {
  // With a zero router every probability is 1/E; with top_k = E each expert gets 1/E of the pairs:
  // L_LB = E * sum_i (1/E)(1/E) = 1, and z-loss = log(E)^2.
  ModelConfig c = tiny();
  c.ffn_experts = 4;
  c.ffn_top_k = 4;
  MoeFfn ffn(c, 4);
  torch::NoGradGuard g;
  ffn->router_ED.zero_();
  RouterStats s;
  ffn->forward(torch::randn({2, 8, c.d_model}), &s);
  EXPECT_NEAR(s.load_balance.item<double>(), 1.0, 1e-6);
  EXPECT_NEAR(s.z_loss.item<double>(), std::pow(std::log(4.0), 2), 1e-5);
  EXPECT_TRUE(testing::tensors_near(s.util_E, torch::full({4}, 0.25), 1e-7));
}

// Invalid configs are rejected by key before any tensor is allocated.
TEST_F(ModelTest, InvalidConfigsNameTheKey) {
  struct Case {
    const char* key;
    std::function<void(ModelConfig&)> mutate;
  } cases[] = {
      {"heads", [](ModelConfig& c) { c.heads = 5; }},
      {"kv_heads", [](ModelConfig& c) { c.kv_heads = 3; }},
      {"d_model", [](ModelConfig& c) { c.d_model = 0; }},
      {"ffn_hidden", [](ModelConfig& c) { c.ffn_hidden = -4; }},
      {"vocab", [](ModelConfig& c) { c.vocab = 0; }},
      {"ffn_top_k",
       [](ModelConfig& c) {
         c.ffn_experts = 2;
         c.ffn_top_k = 3;
       }},
      {"attn_top_k",
       [](ModelConfig& c) {
         c.attn_experts = 2;
         c.attn_top_k = 0;
       }},
      {"ffn_granularity", [](ModelConfig& c) { c.ffn_granularity = 5; }},
  };
  for (const auto& k : cases) {
    ModelConfig c = tiny();
    k.mutate(c);
    try {
      TransformerLm m(c);
      ADD_FAILURE() << k.key << ": no error";
    } catch (const core::FieldError& e) {
      EXPECT_EQ(e.path(), k.key) << e.what();
    }
  }
}

}  // namespace
}  // namespace upcycle::stages
