// Identities that hold exactly by construction: a mixture of identical experts equals the dense layer.
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
void tile(const at::Tensor& src, at::Tensor& dst) {
  torch::NoGradGuard g;
  dst.copy_(src.narrow(0, 0, 1).expand_as(dst));
}

TEST(IdentityTest, MoeOfIdenticalExpertsEqualsDenseFfn) {
  struct Case {
    const char* routing;
    int64_t experts, top_k;
    bool renorm;
  } cases[] = {{"topk_then_softmax", 4, 1, false}, {"topk_then_softmax", 4, 2, false},
               {"softmax_then_topk", 4, 4, false}, {"softmax_then_topk", 3, 2, true},
               {"softmax_then_topk", 8, 1, true}};
  for (const auto& k : cases) {
    torch::manual_seed(1);
    ModelConfig c = base();
    MoeFfn dense(c, 1);
    c.ffn_experts = k.experts;
    c.ffn_top_k = k.top_k;
    c.ffn_routing = k.routing;
    c.ffn_renormalize = k.renorm;
    MoeFfn moe(c, k.experts);
    tile(dense->w1_EFD, moe->w1_EFD);
    tile(dense->w3_EFD, moe->w3_EFD);
    tile(dense->w2_EDF, moe->w2_EDF);
    auto x = torch::randn({3, 16, c.d_model});
    EXPECT_TRUE(testing::tensors_near(moe->forward(x), dense->forward(x), 1e-6))
        << k.routing << " E=" << k.experts << " k=" << k.top_k;
  }
}

TEST(IdentityTest, SoftMixtureOfIdenticalAttentionEqualsDense) {
  for (const char* kv : {"expert", "shared"}) {
    torch::manual_seed(2);
    ModelConfig c = base();
    MixtureOfAttention dense(c);
    c.attn_experts = 3;
    c.attn_kv = kv;
    MixtureOfAttention moa(c);
    tile(dense->wq_EHD, moa->wq_EHD);
    tile(dense->wk_EGD, moa->wk_EGD);
    tile(dense->wv_EGD, moa->wv_EGD);
    tile(dense->wo_EDH, moa->wo_EDH);
    auto x = torch::randn({2, 16, c.d_model});
    auto rope = make_rope(16, c.head_dim(), c.rope_theta, x.device());
    EXPECT_TRUE(testing::tensors_near(moa->forward(x, rope), dense->forward(x, rope), 1e-6)) << kv;
  }
}

TEST(IdentityTest, TopKAttentionRoutingGatesSumToOne) {
  torch::manual_seed(3);
  ModelConfig c = base();
  c.attn_experts = 4;
  c.attn_routing = "top_k";
  c.attn_top_k = 2;
  MixtureOfAttention moa(c);
  auto x = torch::randn({2, 16, c.d_model});
  at::Tensor gates;
  moa->forward(x, make_rope(16, c.head_dim(), c.rope_theta, x.device()), &gates);
  EXPECT_TRUE(testing::tensors_near(gates.sum(-1), torch::ones({2, 16}), 1e-6));
  EXPECT_TRUE(((gates > 0).sum(-1) == 2).all().item<bool>());
}

}  // namespace
}  // namespace upcycle::stages
