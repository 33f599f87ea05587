// GPU tests: named *_CUDA, skipped (and reported as skipped) where CUDA is unavailable.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stages/model/transformer.h"
#include "stages/upcycle/upcycle_config.h"
#include "tests/support/model_configs.h"
#include "tests/support/tensor_asserts.h"

namespace upcycle::stages {
namespace {

TEST(ModelTest, BamForwardMatchesCpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  ModelConfig c = testing::small_config(/*vocab=*/300);
  ModelConfig mix;
  mix.ffn_routing = "topk_then_softmax";
  mix.ffn_top_k = 3;  // top_k = E: no routing ties between devices
  c = upcycled_config("bam", c, mix, 3);
  torch::manual_seed(0);
  TransformerLm cpu(c);
  TransformerLm gpu(c);
  {
    torch::NoGradGuard g;
    auto src = cpu->named_parameters();
    for (auto& p : gpu->named_parameters()) p.value().copy_(src[p.key()]);
  }
  gpu->to(torch::kCUDA);
  auto idx = torch::randint(c.vocab, {2, c.seq_len});
  auto a = cpu->forward(idx).logits_BTV;
  auto b = gpu->forward(idx.to(torch::kCUDA)).logits_BTV.to(torch::kCPU);
  EXPECT_TRUE(testing::tensors_near(b, a, 2e-3, 1e-3));
}

}  // namespace
}  // namespace upcycle::stages
