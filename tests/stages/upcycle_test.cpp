// Weight surgery: identities against the dense model, byte-equal experts, averaged shared weights,
// and an upcycled checkpoint that loads and trains.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/data/data_layout.h"
#include "stages/data/math_problems.h"
#include "stages/data/token_shard.h"
#include "stages/io/checkpoint.h"
#include "stages/train/trainer.h"
#include "stages/upcycle/surgery.h"
#include "tests/support/byte_corpus.h"
#include "tests/support/model_configs.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tensor_asserts.h"

namespace upcycle::stages {
namespace {

ModelConfig dense_config() { return testing::small_config(/*vocab=*/256); }

// q/k/v biases (qkv_bias) start at zero; here they are random, so that surgery must carry them.
TransformerLm dense_model(const ModelConfig& c) {
  TransformerLm m(c);
  torch::NoGradGuard g;
  for (auto& item : m->named_parameters()) {
    if (item.key().find(".attn.b") != std::string::npos) item.value().normal_(0, 0.5);
  }
  return m;
}

std::vector<std::string> save_dense(const testing::TempDir& dir, int n, bool identical,
                                    const ModelConfig& c = dense_config()) {
  std::vector<std::string> out;
  torch::manual_seed(0);
  TransformerLm first = dense_model(c);
  for (int i = 0; i < n; ++i) {
    torch::manual_seed(100 + i);
    TransformerLm m = identical ? first : dense_model(c);
    out.push_back(dir / ("dense" + std::to_string(i)));
    save_checkpoint(out.back(), m, CheckpointMeta{});
  }
  return out;
}

at::Tensor logits(const ModelConfig& c, const TensorMap& state, const at::Tensor& idx) {
  TransformerLm m(c);
  load_state_into(m, state, "test");
  return m->forward(idx).logits_BTV;
}

TEST(UpcycleTest, BamAndBtxOfIdenticalModelsGiveTheDenseLogits) {
  for (bool bias : {false, true}) {  // q/k/v biases (a Qwen2 seed) copied and averaged as weights
    testing::TempDir dir;
    ModelConfig c = dense_config();
    c.qkv_bias = bias;
    auto inputs = save_dense(dir, 3, /*identical=*/true, c);
    CheckpointMeta meta;
    TensorMap dense = load_checkpoint_state(inputs[0], &meta);
    auto idx = torch::randint(256, {2, 16});
    auto want = logits(meta.model, dense, idx);
    for (const char* method : {"bam", "btx"}) {
      for (const char* kv : {"expert", "shared"}) {
        UpcycleSpec s;
        s.method = core::enum_from(kUpcycleMethodNames, method, "method");
        s.inputs = inputs;
        s.mixture.ffn_routing = FfnRouting::kTopKThenSoftmax;
        s.mixture.attn_kv = core::enum_from(kKvModeNames, kv, "attn_kv");
        UpcycleResult r = upcycle_dense(s);
        EXPECT_EQ(r.config.qkv_bias, bias);
        EXPECT_TRUE(testing::tensors_near(logits(r.config, r.state, idx), want, 1e-5))
            << method << " kv " << kv << (bias ? " with biases" : "");
      }
    }
  }
}

TEST(UpcycleTest, ExpertsAreCopiesAndSharedWeightsAreAverages) {
  testing::TempDir dir;
  auto inputs = save_dense(dir, 3, /*identical=*/false);
  std::vector<TensorMap> dense;
  for (const auto& in : inputs) dense.push_back(load_checkpoint_state(in, nullptr));
  UpcycleSpec s;
  s.method = UpcycleMethod::kBam;
  s.inputs = inputs;
  UpcycleResult r = upcycle_dense(s);
  for (int i = 0; i < 3; ++i) {
    for (const char* name : {"blocks.1.attn.wq", "blocks.1.attn.wk", "blocks.0.ffn.w2"}) {
      EXPECT_TRUE(torch::equal(r.state.at(name)[i], dense[i].at(name)[0]))
          << name << " expert " << i;
    }
  }
  for (const char* name : {"embed", "head", "final_norm", "blocks.0.norm1"}) {
    auto hand = (dense[0].at(name) + dense[1].at(name) + dense[2].at(name)) / 3.0;
    EXPECT_TRUE(testing::tensors_near(r.state.at(name), hand, 1e-7)) << name;
  }
  s.method = UpcycleMethod::kBtx;
  UpcycleResult btx = upcycle_dense(s);
  auto hand_q = (dense[0].at("blocks.0.attn.wq") + dense[1].at("blocks.0.attn.wq") +
                 dense[2].at("blocks.0.attn.wq")) /
                3.0;
  EXPECT_TRUE(testing::tensors_near(btx.state.at("blocks.0.attn.wq"), hand_q, 1e-7));
}

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).norm() / b.norm()).item<double>();
}

// NVIDIA's virtual-group sparse upcycling (E experts per shard, G shards, top-T) against the dense
// model's logits. Exact where the algebra is exact: top-T = G picks one whole set of shards, and
//   topk_then_softmax gives each shard weight 1/G, undone exactly by W2 x G ("w2" scaling);
//   softmax_then_topk gives each shard p = 1/(E·G) only under uniform routing (a zero router).
// Approximate otherwise, with the tolerances stated per case:
//   a random router makes softmax_then_topk's p differ from 1/(E·G) by about the logit spread;
//   Megatron's cube-root scaling of W1, W3, W2 is exact for linear activations only, and SwiGLU's
//   silu(a·z) = a·silu(z) holds only to first order in the (small, init-scale) pre-activations.
TEST(UpcycleTest, VirtualGroupsReproduceTheDenseModel) {
  testing::TempDir dir;
  auto inputs = save_dense(dir, 1, true);
  CheckpointMeta meta;
  TensorMap dense = load_checkpoint_state(inputs[0], &meta);
  auto idx = torch::randint(256, {2, 16});
  auto want = logits(meta.model, dense, idx);
  struct Case {
    int64_t E, G, T;
    const char* routing;
    const char* scaling;
    bool zero_router;
    double max_rel_error;
  } cases[] = {
      {2, 2, 2, "topk_then_softmax", "w2", false, 1e-6},   // G = 2, exact
      {8, 8, 8, "topk_then_softmax", "w2", false, 1e-6},   // E8G8T8, exact
      {8, 8, 8, "softmax_then_topk", "w2", true, 1e-6},    // exact under uniform routing
      {8, 8, 8, "softmax_then_topk", "w2", false, 0.05},   // random router
      {2, 2, 2, "topk_then_softmax", "all", false, 0.05},  // Megatron scaling, SwiGLU
      {8, 8, 8, "softmax_then_topk", "all", true, 0.05},   // Megatron scaling, SwiGLU
  };
  for (const auto& c : cases) {
    UpcycleSpec s;
    s.method = UpcycleMethod::kSparse;
    s.inputs = inputs;
    s.mixture.ffn_experts = c.E;
    s.mixture.ffn_granularity = c.G;
    s.mixture.ffn_top_k = c.T;
    s.mixture.ffn_routing = core::enum_from(kFfnRoutingNames, c.routing, "ffn_routing");
    s.weight_scaling = c.scaling;
    UpcycleResult r = upcycle_dense(s);
    EXPECT_EQ(r.config.ffn_experts, c.E * c.G);
    EXPECT_EQ(r.config.expert_hidden(), meta.model.ffn_hidden / c.G);
    auto router = r.state.at("blocks.0.ffn.router");
    EXPECT_TRUE(torch::equal(router[0], router[c.G - 1]));  // one virtual group, one router row
    if (c.zero_router) {
      for (auto& [name, t] : r.state) {
        if (name.find(".router") != std::string::npos) t.zero_();
      }
    }
    double err = relative_error(logits(r.config, r.state, idx), want);
    EXPECT_LE(err, c.max_rel_error)
        << "E" << c.E << "G" << c.G << "T" << c.T << " " << c.routing << " scaling " << c.scaling
        << (c.zero_router ? " zero router" : "");
  }
}

// Komatsuzaki et al.: every expert an exact copy, MoE in every other layer, no scaling. With
// topk_then_softmax the copies' weights sum to 1, so the logits are the dense model's exactly.
TEST(UpcycleTest, KomatsuzakiEveryOtherLayerCopiesGiveTheDenseLogits) {
  testing::TempDir dir;
  auto inputs = save_dense(dir, 1, true);
  CheckpointMeta meta;
  TensorMap dense = load_checkpoint_state(inputs[0], &meta);
  UpcycleSpec s;
  s.method = UpcycleMethod::kSparse;
  s.inputs = inputs;
  s.mixture.ffn_experts = 4;
  s.mixture.ffn_top_k = 2;
  s.mixture.ffn_routing = FfnRouting::kTopKThenSoftmax;
  s.mixture.moe_every = 2;
  s.weight_scaling = "none";
  UpcycleResult r = upcycle_dense(s);
  EXPECT_EQ(r.state.at("blocks.0.ffn.w1").size(0), 1);  // layer 0 stays dense
  EXPECT_EQ(r.state.at("blocks.1.ffn.w1").size(0), 4);
  for (int e = 0; e < 4; ++e) {
    EXPECT_TRUE(torch::equal(r.state.at("blocks.1.ffn.w2")[e], dense.at("blocks.1.ffn.w2")[0]));
  }
  auto idx = torch::randint(256, {2, 16});
  EXPECT_LE(relative_error(logits(r.config, r.state, idx), logits(meta.model, dense, idx)), 1e-6);
}

TEST(UpcycleTest, BtxExtraSeedExpertsCopyTheSeedFfn) {
  testing::TempDir dir;
  auto inputs = save_dense(dir, 3, false);
  TensorMap seed = load_checkpoint_state(inputs[0], nullptr);
  UpcycleSpec s;
  s.method = UpcycleMethod::kBtx;
  s.inputs = inputs;
  s.extra_seed_experts = 3;  // BAM Table 5: 6 experts
  UpcycleResult r = upcycle_dense(s);
  EXPECT_EQ(r.config.ffn_experts, 6);
  for (int e : {0, 3, 4, 5}) {
    EXPECT_TRUE(torch::equal(r.state.at("blocks.1.ffn.w1")[e], seed.at("blocks.1.ffn.w1")[0])) << e;
  }
}

TEST(UpcycleTest, DenseModelsOfDifferentShapesAreRejected) {
  testing::TempDir dir;
  auto inputs = save_dense(dir, 1, true);
  ModelConfig other = dense_config();
  other.ffn_hidden = 64;
  TransformerLm m(other);
  save_checkpoint(dir / "other", m, CheckpointMeta{});
  UpcycleSpec s;
  s.inputs = {inputs[0], dir / "other"};
  try {
    upcycle_dense(s);
    FAIL();
  } catch (const StageError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("ffn_hidden"), std::string::npos) << msg;
    EXPECT_NE(msg.find(dir / "other"), std::string::npos) << msg;
  }
}

TEST(UpcycleTest, UpcycledCheckpointLoadsAndTrains) {
  testing::TempDir dir;
  auto inputs = save_dense(dir, 2, false);
  UpcycleSpec s;
  s.inputs = inputs;
  UpcycleResult r = upcycle_dense(s);
  CheckpointMeta meta;
  meta.model = r.config;
  save_checkpoint(dir / "bam", r.state, meta);
  std::string data = dir / "data";
  testing::write_byte_shards(data);
  TrainSpec t;
  t.init_checkpoint = dir / "bam";
  t.data_dir = data;
  t.mix = {{"math", 1.0}};
  t.tokens = 16 * 8 * 20;
  t.batch_size = 8;
  t.optim.lr = 3e-3;
  t.out_dir = dir / "job";
  core::NullMetricSink sink;
  TrainOutcome out = train(t, sink);
  EXPECT_EQ(out.steps, 20);
  CheckpointMeta trained;
  TransformerLm m = load_model(out.checkpoint_dir, &trained);
  EXPECT_EQ(trained.model.attn_experts, 2);
  EXPECT_LT(out.val_loss, std::log(256.0));  // learned something about the text
}

}  // namespace
}  // namespace upcycle::stages
