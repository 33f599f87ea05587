// The paper-scale training paths against the plain ones (design.md, "Paper scale"): the chunked
// fused head + loss against logits -> cross-entropy, and activation recomputation against keeping
// every activation, on dense and BAM models, parallel and sequential blocks.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stages/model/lm_head_loss.h"
#include "stages/model/transformer.h"
#include "tests/support/model_configs.h"

namespace upcycle::stages {
namespace {

// max |a - b| over max |a|, over every gradient.
double relative_gap(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  double gap = 0, scale = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    gap = std::max(gap, (a[i] - b[i]).abs().max().item<double>());
    scale = std::max(scale, a[i].abs().max().item<double>());
  }
  return gap / scale;
}

TEST(ScaleTest, ChunkedHeadAndLossEqualTheFullLogitsPath) {
  torch::manual_seed(0);
  const int64_t N = 37, D = 16, V = 101;
  auto h = torch::randn({N, D}, torch::kFloat64).requires_grad_(true);
  auto w = (torch::randn({V, D}, torch::kFloat64) * 0.3).requires_grad_(true);
  auto t = torch::randint(V, {N}, torch::kInt64);
  auto full = torch::nn::functional::cross_entropy(torch::matmul(h, w.t()), t);
  auto want = torch::autograd::grad({full}, {h, w});
  for (int64_t chunk : {1, 5, 16, 37, 1000}) {
    auto loss = chunked_lm_loss(h, w, t, chunk);
    auto got = torch::autograd::grad({loss}, {h, w});
    EXPECT_NEAR(loss.item<double>(), full.item<double>(), 1e-12) << "chunk " << chunk;
    EXPECT_LT(relative_gap(want, got), 1e-12) << "chunk " << chunk;
  }
  // fp32, as training runs it: within 1e-6.
  auto h32 = h.detach().to(torch::kFloat32).requires_grad_(true);
  auto w32 = w.detach().to(torch::kFloat32).requires_grad_(true);
  auto got32 = torch::autograd::grad({chunked_lm_loss(h32, w32, t, 8)}, {h32, w32});
  EXPECT_LT(relative_gap(want, {got32[0].to(torch::kFloat64), got32[1].to(torch::kFloat64)}), 1e-6);
  // Without grad mode: the loss alone, the same value.
  torch::NoGradGuard no_grad;
  EXPECT_NEAR(chunked_lm_loss(h, w, t, 3).item<double>(), full.item<double>(), 1e-12);
  EXPECT_EQ(default_loss_chunk(256000), 256);
  EXPECT_EQ(default_loss_chunk(4096), 16384);
  EXPECT_EQ(default_loss_chunk(int64_t(1) << 30), 1);
}

// The loss and every parameter's gradient of one forward_hidden + chunked loss.
std::pair<double, std::vector<at::Tensor>> loss_and_grads(TransformerLm& m, const at::Tensor& b,
                                                          Recompute r) {
  m->zero_grad();
  const int64_t T = b.size(1) - 1;
  auto res = m->forward_hidden(b.narrow(1, 0, T), r);
  auto loss = lm_loss_chunked(*m, res.hidden_BTD, b.narrow(1, 1, T), 7) + res.aux_loss;
  loss.backward();
  std::vector<at::Tensor> grads;
  for (const auto& p : m->parameters()) grads.push_back(p.grad().clone());
  return {loss.item<double>(), grads};
}

TEST(ScaleTest, RecomputedActivationsGiveTheSameLossAndGradients) {
  for (BlockType block : {BlockType::kParallel, BlockType::kSequential}) {
    for (int64_t experts : {1, 3}) {
      ModelConfig c = testing::small_config(97, 3);
      c.block = block;
      c.attn_experts = experts;
      c.ffn_experts = experts;
      c.ffn_top_k = experts > 1 ? 2 : 1;
      torch::manual_seed(1);
      TransformerLm m(c);
      auto b = torch::randint(c.vocab, {3, c.seq_len + 1}, torch::kInt64);
      const auto [loss, grads] = loss_and_grads(m, b, Recompute::kNone);
      // The plain path's loss equals the logits path's.
      {
        torch::NoGradGuard no_grad;
        auto logits = m->forward(b.narrow(1, 0, c.seq_len)).logits_BTV;
        EXPECT_NEAR(lm_loss(logits, b.narrow(1, 1, c.seq_len)).item<double>() +
                        m->forward(b.narrow(1, 0, c.seq_len)).aux_loss.item<double>(),
                    loss, 1e-5);
      }
      for (Recompute r : {Recompute::kBlock, Recompute::kSelective}) {
        const std::string what = std::string(core::enum_name(kRecomputeNames, r)) + ", " +
                                 core::enum_name(kBlockNames, block) + ", " +
                                 std::to_string(experts) + " experts";
        const auto [again, regrads] = loss_and_grads(m, b, r);
        EXPECT_EQ(again, loss) << what;  // bit for bit
        EXPECT_LT(relative_gap(grads, regrads), 1e-6) << what;
      }
    }
  }
}

}  // namespace
}  // namespace upcycle::stages
