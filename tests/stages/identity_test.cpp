// Identities that hold exactly by construction: a mixture of identical experts equals the dense
// layer.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stages/model/attention.h"
#include "stages/model/moe_ffn.h"
#include "tests/support/model_configs.h"
#include "tests/support/tensor_asserts.h"

namespace upcycle::stages {
namespace {

ModelConfig base() { return testing::small_config(); }

// Copies expert 0 of `src` into every expert of `dst` (same stacked layout).
void tile(const at::Tensor& src, at::Tensor dst) {
  torch::NoGradGuard g;
  dst.copy_(src.narrow(0, 0, 1).expand_as(dst));
}

TEST(IdentityTest, MoeOfIdenticalExpertsEqualsDenseFfn) {
  struct Case {
    const char* routing;
    int64_t experts, top_k;
    bool renorm;
  } cases[] = {{"topk_then_softmax", 4, 1, false},
               {"topk_then_softmax", 4, 2, false},
               {"softmax_then_topk", 4, 4, false},
               {"softmax_then_topk", 3, 2, true},
               {"softmax_then_topk", 8, 1, true}};
  for (const auto& k : cases) {
    torch::manual_seed(1);
    ModelConfig c = base();
    MoeFfn dense(c, 1);
    c.ffn_experts = k.experts;
    c.ffn_top_k = k.top_k;
    c.ffn_routing = core::enum_from(kFfnRoutingNames, k.routing, "ffn_routing");
    c.ffn_renormalize = k.renorm;
    MoeFfn moe(c, k.experts);
    tile(dense->w13_E2FD, moe->w13_E2FD);
    tile(dense->w2_EDF, moe->w2_EDF);
    auto x = torch::randn({3, 16, c.d_model});
    EXPECT_TRUE(testing::tensors_near(moe->forward(x), dense->forward(x), 1e-6))
        << k.routing << " E=" << k.experts << " k=" << k.top_k;
  }
}

// Flat biases [E*n]: each expert's n entries are the dense layer's.
void tile_flat(const at::Tensor& src, at::Tensor dst) {
  torch::NoGradGuard g;
  dst.copy_(src.repeat(dst.size(0) / src.size(0)));
}

TEST(IdentityTest, SoftMixtureOfIdenticalAttentionEqualsDense) {
  for (bool bias : {false, true}) {  // q/k/v biases (Qwen2) on the experts' own path too
    for (const char* kv : {"expert", "shared"}) {
      torch::manual_seed(2);
      ModelConfig c = base();
      c.qkv_bias = bias;
      MixtureOfAttention dense(c);
      if (bias) {
        torch::NoGradGuard g;
        for (auto* b : {&dense->bq_X, &dense->bk_X, &dense->bv_X}) b->normal_(0, 0.5);
      }
      c.attn_experts = 3;
      c.attn_kv = core::enum_from(kKvModeNames, kv, "attn_kv");
      MixtureOfAttention moa(c);
      tile(dense->wq_EHD, moa->wq_EHD);
      tile(dense->wk_EGD, moa->wk_EGD);
      tile(dense->wv_EGD, moa->wv_EGD);
      tile(dense->wo_EDH, moa->wo_EDH);
      if (bias) {
        tile_flat(dense->bq_X, moa->bq_X);
        tile_flat(dense->bk_X, moa->bk_X);
        tile_flat(dense->bv_X, moa->bv_X);
      }
      auto x = torch::randn({2, 16, c.d_model});
      auto rope = make_rope(16, c, x.device());
      EXPECT_TRUE(testing::tensors_near(moa->forward(x, rope), dense->forward(x, rope), 1e-6))
          << kv << (bias ? " with biases" : "");
    }
  }
}

// Expert-KV whose experts share one K/V (but not Q/O) equals shared-KV with that K/V.
TEST(IdentityTest, ExpertKvWithEqualKeysAndValuesEqualsSharedKv) {
  torch::manual_seed(4);
  ModelConfig c = base();
  c.attn_experts = 3;
  c.attn_kv = KvMode::kShared;
  MixtureOfAttention shared(c);
  c.attn_kv = KvMode::kExpert;
  MixtureOfAttention expert(c);
  {
    torch::NoGradGuard g;
    expert->wq_EHD.copy_(shared->wq_EHD);
    expert->wo_EDH.copy_(shared->wo_EDH);
    expert->router_ED.copy_(shared->router_ED);
  }
  tile(shared->wk_EGD, expert->wk_EGD);
  tile(shared->wv_EGD, expert->wv_EGD);
  auto x = torch::randn({2, 16, c.d_model});
  auto rope = make_rope(16, c, x.device());
  EXPECT_TRUE(testing::tensors_near(expert->forward(x, rope), shared->forward(x, rope), 1e-6));
}

// Reference attention written out head by head: RoPE, causal softmax(q k^T / sqrt(C)) v, with query
// head h reading kv head h / (H/G). Checks GQA (G < H) and MHA (G = H) against the batched module.
at::Tensor reference_attention(const MixtureOfAttention& m, const at::Tensor& x_BTD,
                               const RopeTables& rope) {
  const auto& c = m->config;
  const int64_t T = x_BTD.size(1), C = c.head_dim(), H = c.heads, G = c.kv_heads;
  auto q = torch::matmul(x_BTD, m->wq_EHD[0].t()), k = torch::matmul(x_BTD, m->wk_EGD[0].t());
  auto v = torch::matmul(x_BTD, m->wv_EGD[0].t());
  auto mask = torch::ones({T, T}, torch::kBool).triu(1);
  std::vector<at::Tensor> heads;
  for (int64_t h = 0; h < H; ++h) {
    int64_t g = h / (H / G);
    auto qh = apply_rope(q.narrow(-1, h * C, C), rope),
         kh = apply_rope(k.narrow(-1, g * C, C), rope);
    auto scores = torch::matmul(qh, kh.transpose(-2, -1)) / std::sqrt(double(C));
    heads.push_back(
        torch::matmul(scores.masked_fill(mask, -INFINITY).softmax(-1), v.narrow(-1, g * C, C)));
  }
  return torch::matmul(torch::cat(heads, -1), m->wo_EDH[0].t());
}

TEST(IdentityTest, AttentionMatchesAHeadByHeadReference) {
  for (int64_t kv_heads : {4, 2, 1}) {
    torch::manual_seed(5);
    ModelConfig c = base();
    c.kv_heads = kv_heads;
    MixtureOfAttention m(c);
    auto x = torch::randn({2, 16, c.d_model});
    auto rope = make_rope(16, c, x.device());
    EXPECT_TRUE(testing::tensors_near(m->forward(x, rope), reference_attention(m, x, rope), 1e-5))
        << "kv_heads " << kv_heads;
  }
}

TEST(IdentityTest, TopKAttentionRoutingGatesSumToOne) {
  torch::manual_seed(3);
  ModelConfig c = base();
  c.attn_experts = 4;
  c.attn_routing = AttnRouting::kTopK;
  c.attn_top_k = 2;
  MixtureOfAttention moa(c);
  auto x = torch::randn({2, 16, c.d_model});
  at::Tensor gates;
  moa->forward(x, make_rope(16, c, x.device()), &gates);
  EXPECT_TRUE(testing::tensors_near(gates.sum(-1), torch::ones({2, 16}), 1e-6));
  EXPECT_TRUE(((gates > 0).sum(-1) == 2).all().item<bool>());
}

}  // namespace
}  // namespace upcycle::stages
