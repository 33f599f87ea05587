// The trainer: exact resume after preemption, and the checkpoint swap that makes it safe.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

#include "core/metric_sink.h"
#include "stages/io/checkpoint.h"
#include "stages/train/adamw.h"
#include "stages/train/distributed.h"
#include "stages/train/trainer.h"
#include "tests/support/byte_corpus.h"
#include "tests/support/model_configs.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

// Keeps every logged loss by step.
class RecordingSink : public core::MetricSink {
 public:
  void log(int64_t step, const std::map<std::string, double>& values) override {
    auto it = values.find("loss");
    if (it != values.end()) loss[step] = it->second;
  }
  std::map<int64_t, double> loss;
};

TrainSpec spec_in(const std::string& data, const std::string& out) {
  TrainSpec t;
  t.model = testing::small_config(256);
  t.model.ffn_experts = 3;  // an MoE, so routing and the aux losses are part of what must replay
  t.model.ffn_top_k = 2;
  t.data_dir = data;
  t.mix = {{"math", 1.0}};
  t.batch_size = 4;
  t.micro_batch = 2;       // gradient accumulation too
  t.tokens = 4 * 16 * 12;  // 12 steps
  t.log_every = 1;
  t.optim.lr = 3e-3;
  t.optim.warmup = 3;
  t.seed = 7;
  t.out_dir = out;
  return t;
}

TEST(TrainerTest, ResumeAfterPreemptionReplaysTheLossesBitForBit) {
  testing::TempDir dir;
  testing::write_byte_shards(dir / "data");
  RecordingSink straight;
  TrainOutcome a = train(spec_in(dir / "data", dir / "a"), straight);
  ASSERT_EQ(a.steps, 12);
  ASSERT_EQ(straight.loss.size(), 12u);

  for (int64_t stop : {1, 5, 11}) {
    std::string out = dir / ("b" + std::to_string(stop));
    TrainSpec first = spec_in(dir / "data", out);
    first.stop_after_steps = stop;
    RecordingSink resumed;
    TrainOutcome b1 = train(first, resumed);
    EXPECT_TRUE(b1.preempted);
    EXPECT_EQ(b1.steps, stop);
    TrainOutcome b2 = train(spec_in(dir / "data", out), resumed);  // the requeued attempt
    EXPECT_FALSE(b2.preempted);
    EXPECT_EQ(b2.steps, 12);
    ASSERT_EQ(resumed.loss.size(), 12u);
    for (const auto& [step, loss] : straight.loss) {
      EXPECT_EQ(resumed.loss.at(step), loss) << "stopped at " << stop << ", step " << step;
    }
    auto wa = load_checkpoint_state(a.checkpoint_dir, nullptr);
    auto wb = load_checkpoint_state(b2.checkpoint_dir, nullptr);
    for (const auto& [name, t] : wa) EXPECT_TRUE(torch::equal(t, wb.at(name))) << name;
  }
}

TEST(TrainerTest, InterruptedCheckpointSwapIsRecovered) {
  testing::TempDir dir;
  TransformerLm m(testing::small_config());
  save_checkpoint(dir / "ck", m, CheckpointMeta{});
  std::filesystem::rename(dir / "ck", dir / "ck.prev");  // killed between the two renames
  EXPECT_TRUE(checkpoint_exists(dir / "ck"));
  EXPECT_NO_THROW(load_model(dir / "ck"));
  EXPECT_TRUE(std::filesystem::exists(dir / "ck/config.json"));
}

}  // namespace
}  // namespace upcycle::stages

namespace upcycle::stages {
namespace {

// A diverging run stops with the step named, and the checkpoint on disk is the last finite one.
TEST(TrainerBadInputTest, NonFiniteTrainingStopsAndKeepsTheLastGoodCheckpoint) {
  testing::TempDir dir;
  testing::write_byte_shards(dir / "data");
  TrainSpec t = spec_in(dir / "data", dir / "out");
  t.optim.lr = 1e30;  // diverges within a few steps
  t.optim.warmup = 0;
  t.optim.grad_clip = 0;
  t.checkpoint_every = 1;
  RecordingSink sink;
  try {
    train(t, sink);
    FAIL() << "a diverging run finished";
  } catch (const StageError& e) {
    std::string msg = e.what();
    // Either the loss or, first, the updated weights stop being finite.
    EXPECT_TRUE(msg.find("loss is") != std::string::npos ||
                msg.find("non-finite at step") != std::string::npos)
        << msg;
    EXPECT_NE(msg.find(" at step "), std::string::npos) << msg;
    EXPECT_NE(msg.find("the last good checkpoint (step "), std::string::npos) << msg;
  }
  if (checkpoint_exists(dir / "out/checkpoint")) {  // unless step 1 already overflowed
    CheckpointMeta meta;
    TransformerLm m = load_model(dir / "out/checkpoint", &meta);
    for (const auto& p : m->parameters()) EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  }
}

// The loss stays on the device between log steps; a loss that stops being finite between them is
// still caught (at the latest before the final checkpoint) and named by the step it first happened.
TEST(TrainerBadInputTest, NonFiniteLossBetweenLogStepsIsNamedByItsFirstStep) {
  testing::TempDir dir;
  testing::write_byte_shards(dir / "data");
  auto failure = [&](int64_t log_every, const std::string& out) {
    TrainSpec t = spec_in(dir / "data", dir / out);
    t.optim.lr = 1e30;
    t.optim.warmup = 0;
    t.optim.grad_clip = 0;
    t.log_every = log_every;
    RecordingSink sink;
    try {
      train(t, sink);
    } catch (const StageError& e) {
      return std::string(e.what());
    }
    return std::string("finished");
  };
  const std::string every = failure(1, "every"), rarely = failure(1000, "rarely");
  EXPECT_NE(every.find("the loss became non-finite at step "), std::string::npos) << every;
  EXPECT_EQ(rarely.substr(0, rarely.find(';')), every.substr(0, every.find(';')));
  EXPECT_FALSE(checkpoint_exists(dir / "rarely/checkpoint"));  // no checkpoint of a diverged model
}

// Gradient buckets (distributed.h) with a Gloo group of one rank: several buckets, hooks that fire
// in the armed backward only, and accumulated micro-batches averaged as their sum (one rank:
// unchanged).
TEST(DistributedTest, GradientBucketsKeepAccumulatedGradients) {
  if (!distributed_available()) GTEST_SKIP() << "built without Gloo";
  DistEnv env;
  env.master_port = 29000 + ::getpid() % 1000;
  env.bucket_bytes = 2048;
  DataParallel dp(env, "cpu", 60, /*group_of_one=*/true);
  torch::manual_seed(0);
  TransformerLm m(spec_in("", "").model);
  dp.overlap_gradients(m->parameters());
  EXPECT_GT(dp.bucket_count(), 3);
  auto idx = torch::randint(256, {2, 16});
  auto loss = [&](int64_t row) {
    return m->forward(idx.narrow(0, row, 1)).logits_BTV.pow(2).mean();
  };
  loss(0).backward();  // not armed: an ordinary accumulation
  dp.arm_gradient_sync();
  loss(1).backward();
  std::vector<at::Tensor> expected;
  for (const auto& p : m->parameters()) expected.push_back(p.grad().clone());
  for (auto& p : m->parameters())
    p.mutable_grad().zero_();  // what finish writes comes from the buckets
  dp.finish_gradients(m->parameters());
  auto params = m->parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::allclose(params[i].grad(), expected[i])) << i;
}

// A full disk while writing a checkpoint: the save fails with the path and reason, and the previous
// checkpoint is still the one a resume finds. The file-size limit makes every write past 64 KiB
// fail with EFBIG, as a full disk fails with ENOSPC.
TEST(TrainerBadInputTest, DiskFullDuringACheckpointKeepsThePreviousOne) {
  testing::TempDir dir;
  TransformerLm model(testing::small_config());
  CheckpointMeta meta;
  meta.step = 3;
  save_checkpoint(dir / "ck", model, meta);
  // The soft limit only, restored after: no fork (LibTorch's thread pools do not survive one).
  auto old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  ::getrlimit(RLIMIT_FSIZE, &old);
  rlimit lim{64 << 10, old.rlim_max};
  ::setrlimit(RLIMIT_FSIZE, &lim);
  TransformerLm bigger(testing::small_config(4096));  // ~0.5 MB of weights
  CheckpointMeta m2;
  m2.step = 4;
  std::string error;
  try {
    save_checkpoint(dir / "ck", bigger, m2);
  } catch (const Error& e) {
    error = e.what();
  }
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  EXPECT_NE(error.find(dir / "ck"), std::string::npos)
      << "the failed save must name the checkpoint: " << error;
  CheckpointMeta back;
  load_model(dir / "ck", &back);
  EXPECT_EQ(back.step, 3);
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    EXPECT_EQ(e.path().filename(), "ck") << "the failed save left " << e.path();  // no ck.tmp.PID
  }
}

// The fused AdamW step computes what LibTorch's AdamW does, with two parameter groups (decay and no
// decay) and a learning rate that changes between steps, and leaves the state it would.
TEST(TrainerTest, FusedAdamWMatchesLibTorchAdamW) {
  torch::manual_seed(3);
  std::vector<at::Tensor> a = {torch::randn({16, 8}), torch::randn({8})}, b;
  for (auto& t : a) {
    t.requires_grad_(true);
    b.push_back(t.detach().clone().requires_grad_(true));
  }
  auto make = [](std::vector<at::Tensor>& p) {
    auto opts = [](double wd) {
      return std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(wd));
    };
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(std::vector<at::Tensor>{p[0]}, opts(0.1));
    groups.emplace_back(std::vector<at::Tensor>{p[1]}, opts(0.0));
    return torch::optim::AdamW(groups, torch::optim::AdamWOptions(1e-2));
  };
  auto reference = make(a), fused = make(b);
  const at::Tensor initial = b[0].detach().clone();
  for (int step = 0; step < 4; ++step) {
    for (size_t i = 0; i < a.size(); ++i) {
      auto g = torch::randn_like(a[i]);
      a[i].mutable_grad() = g.clone();
      b[i].mutable_grad() = g.clone();
    }
    for (auto* opt : {&reference, &fused}) {
      for (auto& group : opt->param_groups()) {
        static_cast<torch::optim::AdamWOptions&>(group.options()).lr(1e-2 / (step + 1));
      }
    }
    reference.step();
    adamw_step(fused);
  }
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(torch::allclose(a[i], b[i], 1e-6, 1e-7)) << i;
    auto& sa = static_cast<torch::optim::AdamWParamState&>(
        *reference.state().at(a[i].unsafeGetTensorImpl()));
    auto& sb =
        static_cast<torch::optim::AdamWParamState&>(*fused.state().at(b[i].unsafeGetTensorImpl()));
    EXPECT_EQ(sa.step(), sb.step());
    EXPECT_TRUE(torch::allclose(sa.exp_avg_sq(), sb.exp_avg_sq(), 1e-6, 1e-9)) << i;
  }
  EXPECT_GT((b[0] - initial).abs().max().item<double>(), 1e-3);  // the steps moved the weights
}

// bf16 autocast, exercised on the CPU (the CUDA path runs the same code; cuda_test.cpp covers it on
// a GPU). A BAM-shaped model, so the mixture of attention and the MoE FFN mix bf16 and fp32
// tensors.
TEST(TrainerTest, Bf16AutocastTrainsCloseToFp32AndKeepsFp32Weights) {
  testing::TempDir dir;
  testing::write_byte_shards(dir / "data");
  auto spec = [&](const std::string& out, bool bf16) {
    TrainSpec t = spec_in(dir / "data", dir / out);
    t.model.attn_experts = 3;
    t.micro_batch = 0;
    t.tokens = 4 * 16 * 4;  // 4 steps: bf16 matmuls are slow on CPUs without bf16 instructions
    t.placement.bf16 = bf16;
    return t;
  };
  RecordingSink fp32, bf16;
  train(spec("fp32", false), fp32);
  TrainOutcome b = train(spec("bf16", true), bf16);
  ASSERT_EQ(bf16.loss.size(), 4u);
  // Same weights and data at step 1: the losses differ by bf16 rounding only, and do differ.
  EXPECT_NE(bf16.loss.at(1), fp32.loss.at(1)) << "autocast was not active";
  EXPECT_NEAR(bf16.loss.at(1), fp32.loss.at(1), 0.02 * fp32.loss.at(1));
  EXPECT_NEAR(bf16.loss.at(4), fp32.loss.at(4), 0.05 * fp32.loss.at(4));
  EXPECT_LT(bf16.loss.at(4), bf16.loss.at(1));
  for (const auto& [name, t] : load_checkpoint_state(b.checkpoint_dir, nullptr)) {
    EXPECT_EQ(t.scalar_type(), torch::kFloat32) << name;
  }
}

TEST(TrainerBadInputTest, PlacementIsResolvedOrRefusedByName) {
  Placement cpu = resolve_placement("auto", "auto", 0);
  if (!cuda_available()) {
    EXPECT_EQ(cpu.device, "cpu");
    EXPECT_FALSE(cpu.bf16);  // fp32 on the CPU by default
    try {
      resolve_placement("cuda", "auto", 0);
      FAIL() << "cuda resolved without CUDA";
    } catch (const StageError& e) {
      EXPECT_NE(std::string(e.what()).find("CUDA is not available"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(resolve_placement("cpu", "bf16", 0).bf16);
  EXPECT_THROW(resolve_placement("tpu", "auto", 0), StageError);
  EXPECT_THROW(resolve_placement("cpu", "fp8", 0), StageError);
}

// A checkpoint whose config describes another architecture than its weights is refused by name.
TEST(TrainerBadInputTest, CheckpointFromAnotherArchitectureIsRefused) {
  testing::TempDir dir;
  TransformerLm model(testing::small_config());
  save_checkpoint(dir / "ck", model, CheckpointMeta{});
  std::string cfg = core::read_file(dir / "ck/config.json");
  auto j = nlohmann::json::parse(cfg);
  j["model"]["d_model"] = 64;
  j["model"]["ffn_hidden"] = 96;
  core::write_file_atomic(dir / "ck/config.json", j.dump(2));
  try {
    load_model(dir / "ck");
    FAIL() << "mismatched checkpoint loaded";
  } catch (const StageError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(dir / "ck/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find("not the one the weights were saved with"), std::string::npos) << msg;
  }
  // The same for an edit that keeps every shape and changes only the numbers.
  j = nlohmann::json::parse(cfg);
  j["model"]["rope_theta"] = 500000.0;
  core::write_file_atomic(dir / "ck/config.json", j.dump(2));
  EXPECT_THROW(load_model(dir / "ck"), StageError);
}

}  // namespace
}  // namespace upcycle::stages
