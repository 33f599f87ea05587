// The paper-scale training paths against the plain ones (design.md, "Paper scale"): the chunked
// fused head + loss against logits -> cross-entropy, and activation recomputation against keeping
// every activation, on dense and BAM models, parallel and sequential blocks; bf16 weights with fp32
// masters (optimizer.h) against what bf16 alone would keep.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "stages/model/lm_head_loss.h"
#include "stages/model/transformer.h"
#include "stages/train/distributed.h"
#include "stages/train/optimizer.h"
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

// A checkpoint's view of an optimizer's own slices (one rank: whole parameters).
MomentSource source_of(const std::vector<MomentSlice>& slices) {
  auto find = [&slices](size_t k) -> const MomentSlice* {
    for (const auto& s : slices)
      if (s.param == k) return &s;
    return nullptr;
  };
  return {
      [find](size_t k, int moment, int64_t lo, int64_t n) -> at::Tensor {
        const MomentSlice* s = find(k);
        if (!s) return {};
        const at::Tensor& t = moment == 0 ? s->exp_avg : moment == 1 ? s->exp_avg_sq : s->master;
        return t.defined() ? t.narrow(0, lo - s->lo, n).clone() : t;
      },
      [find](size_t k) { return find(k) ? find(k)->step : int64_t(0); }};
}

// Under ZeRO with bf16 weights: the weights are their fp32 masters rounded to bf16; updates too
// small for bf16 (1e-5 on weights near 1, where bf16's spacing is 2^-7) are lost to the weights
// but kept by the masters; a checkpoint's slices restore the masters exactly, and fp32 weights of
// a replicated run take them whole.
TEST(ScaleTest, Bf16WeightsKeepFp32MastersThatCheckpointsRestore) {
  torch::manual_seed(0);
  const std::vector<at::Tensor> start = {torch::randn({8, 16}) + 1, torch::ones({16})};
  const at::Tensor c0 = torch::randn({8, 16}), c1 = torch::randn({16});
  auto fresh = [&] {
    return std::vector<at::Tensor>{start[0].clone().requires_grad_(true),
                                   start[1].clone().requires_grad_(true)};
  };
  DataParallel one(DistEnv{});
  OptimSpec o;
  o.weight_decay = 0.1;
  std::vector<at::Tensor> params = fresh();
  auto opt = make_step_optimizer(params, o, one, /*zero=*/1, /*bucket_bytes=*/256, true);
  ASSERT_EQ(params[0].scalar_type(), torch::kBFloat16);
  for (int step = 0; step < 3; ++step) {
    opt->zero_grad();
    ((params[0].to(torch::kFloat32) * c0).sum() + (params[1].to(torch::kFloat32) * c1).sum())
        .backward();
    opt->after_backward();
    opt->step(1e-5, 0);
  }
  const auto slices = opt->state_slices();
  ASSERT_EQ(slices.size(), 2u);
  for (const auto& s : slices) {
    const at::Tensor& w = params[s.param];
    ASSERT_TRUE(s.master.defined());
    EXPECT_EQ(s.master.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(s.master.to(torch::kBFloat16), w.detach().reshape({-1})));
    EXPECT_TRUE(torch::equal(w.detach(), start[s.param].to(torch::kBFloat16)))
        << "an update of 3e-5 must vanish in bf16 weights";
    // The masters keep it: with a constant gradient c every AdamW step is decay, then -lr·sign(c)
    // (m̂ = c, v̂ = c²), so after three p0·a³ - lr·sign(c)·(a² + a + 1), a = 1 - lr·wd (matrices).
    const double lr = 1e-5, a = s.param == 0 ? 1 - lr * o.weight_decay : 1.0;
    const at::Tensor c = s.param == 0 ? c0 : c1;
    const at::Tensor want = (start[s.param] * a * a * a - lr * c.sign() * (a * a + a + 1));
    EXPECT_LT((s.master - want.reshape({-1})).abs().max().item<double>(), 2e-6);
  }

  std::vector<at::Tensor> again = fresh();
  auto restored = make_step_optimizer(again, o, one, 1, 256, true);
  restored->load(source_of(slices));
  const auto back = restored->state_slices();
  ASSERT_EQ(back.size(), slices.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_TRUE(torch::equal(back[i].master, slices[i].master));
    EXPECT_TRUE(torch::equal(back[i].exp_avg_sq, slices[i].exp_avg_sq));
    EXPECT_EQ(back[i].step, 3);
  }

  std::vector<at::Tensor> fp32 = fresh();
  auto replicated = make_step_optimizer(fp32, o, one, /*zero=*/0, 256);
  replicated->load(source_of(slices));
  for (const auto& s : slices)
    EXPECT_TRUE(torch::equal(fp32[s.param].detach().reshape({-1}), s.master));
}

}  // namespace
}  // namespace upcycle::stages
