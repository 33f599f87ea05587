// GPU tests: named *_CUDA, skipped (and reported as skipped) where CUDA is unavailable. Built in
// every configuration, so CI compiles and links them against a CUDA LibTorch without running them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <c10/cuda/CUDAFunctions.h>

#include "stages/model/moe_ffn.h"
#include "stages/train/adamw.h"
#include "stages/train/distributed.h"

#include "core/metric_sink.h"
#include "stages/arch/upcycle_config.h"
#include "stages/io/checkpoint.h"
#include "stages/model/transformer.h"
#include "stages/train/trainer.h"
#include "tests/support/byte_corpus.h"
#include "tests/support/model_configs.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tensor_asserts.h"

namespace upcycle::stages {
namespace {

TEST(ModelTest, BamForwardMatchesCpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  ModelConfig c = testing::small_config(/*vocab=*/300);
  ModelConfig mix;
  mix.ffn_routing = FfnRouting::kTopKThenSoftmax;
  mix.ffn_top_k = 3;  // top_k = E: no routing ties between devices
  c = upcycled_config(UpcycleMethod::kBam, c, mix, 3);
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

// Any synchronising CUDA call (a device-to-host copy, .item(), a blocking memcpy, a stream or
// device synchronize) throws while in scope: LibTorch's sync-debug mode.
class NoHostSync {
 public:
  NoHostSync() {
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_ERROR);
  }
  ~NoHostSync() {
    c10::cuda::warning_state().set_sync_debug_mode(c10::cuda::SyncDebugMode::L_DISABLED);
  }
};

ModelConfig moe_config(int64_t experts, int64_t top_k) {
  ModelConfig c = testing::small_config(/*vocab=*/300);
  c.d_model = 64;  // grouped GEMM strides: multiples of 16 bytes in bf16
  c.ffn_hidden = 128;
  ModelConfig mix;
  mix.ffn_top_k = top_k;
  return upcycled_config(UpcycleMethod::kBam, c, mix, experts);
}

TEST(ModelTest, Bf16ForwardFollowsFp32Cpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  for (const char* method : {"bam", "btx"}) {
    ModelConfig c = testing::small_config(300);
    ModelConfig mix;
    mix.ffn_routing = FfnRouting::kTopKThenSoftmax;
    mix.ffn_top_k = 3;  // top_k = E: no routing ties between devices
    c = upcycled_config(core::enum_from(kUpcycleMethodNames, method, "method"), c, mix, 3);
    torch::manual_seed(0);
    TransformerLm cpu(c);
    auto idx = torch::randint(c.vocab, {2, c.seq_len});
    auto a = cpu->forward(idx).logits_BTV;
    cpu->to(torch::kCUDA);
    at::Tensor b;
    {
      AutocastScope autocast("cuda:0", true);
      b = cpu->forward(idx.to(torch::kCUDA)).logits_BTV.to(torch::kCPU, torch::kFloat32);
    }
    EXPECT_TRUE(testing::tensors_near(b, a, 3e-2, 3e-2)) << method;
  }
}

// The MoE forward and backward queue their kernels without waiting on the GPU: grouped GEMMs in
// bf16, the padded batched GEMMs in fp32; and both compute what the CPU's per-expert loop computes.
TEST(ModelTest, MoeDispatchMakesNoHostSync_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  const ModelConfig c = moe_config(4, 2);
  torch::manual_seed(0);
  MoeFfn ffn(c, 4);
  auto h = torch::randn({4, 32, c.d_model});
  auto ref = ffn->forward(h, nullptr, MoeDispatch::kLoop);
  ffn->to(torch::kCUDA);
  auto h_gpu = h.to(torch::kCUDA);
  for (bool bf16 : {true, false}) {
    at::Tensor y;
    {
      AutocastScope autocast("cuda:0", bf16);
      NoHostSync guard;
      RouterStats st;
      y = ffn->forward(h_gpu, &st);
      (y.to(torch::kFloat32).pow(2).mean() + st.load_balance + st.z_loss).backward();
    }
    const double tol = bf16 ? 3e-2 : 1e-4;
    EXPECT_TRUE(testing::tensors_near(y.to(torch::kCPU, torch::kFloat32), ref, tol, tol))
        << (bf16 ? "bf16" : "fp32");
    ffn->zero_grad();
  }
}

// One whole training step (forward, backward, fused AdamW) of a BAM model makes no host
// synchronisation; the trainer reads the loss only at log steps.
TEST(TrainerTest, StepMakesNoHostSync_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  const ModelConfig c = moe_config(3, 2);
  torch::manual_seed(0);
  TransformerLm m(c);
  m->to(torch::kCUDA);
  torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(1e-3));
  auto b = torch::randint(c.vocab, {4, c.seq_len + 1})
               .pin_memory()
               .to(torch::kCUDA, /*non_blocking=*/true);
  adamw_step(opt);  // state allocation outside the check
  NoHostSync guard;
  for (int i = 0; i < 2; ++i) {
    opt.zero_grad();
    AutocastScope autocast("cuda:0", true);
    auto out = m->forward(b.narrow(1, 0, c.seq_len));
    (lm_loss(out.logits_BTV, b.narrow(1, 1, c.seq_len)) + out.aux_loss).backward();
    adamw_step(opt);
  }
}

// A step on the GPU lowers the loss of the batch it took.
TEST(TrainerTest, StepLowersTheLoss_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  const ModelConfig c = moe_config(3, 2);
  torch::manual_seed(0);
  TransformerLm m(c);
  m->to(torch::kCUDA);
  torch::optim::AdamW opt(m->parameters(), torch::optim::AdamWOptions(3e-3));
  auto b = torch::randint(c.vocab, {8, c.seq_len + 1}).to(torch::kCUDA);
  auto loss_of = [&] {
    AutocastScope autocast("cuda:0", true);
    return lm_loss(m->forward(b.narrow(1, 0, c.seq_len)).logits_BTV, b.narrow(1, 1, c.seq_len));
  };
  const double before = loss_of().item<double>();
  for (int i = 0; i < 3; ++i) {
    opt.zero_grad();
    loss_of().backward();
    adamw_step(opt);
  }
  EXPECT_LT(loss_of().item<double>(), before - 0.05);
}

// NCCL with one rank: the process group forms, bucketed gradient averaging overlaps a backward and
// leaves the gradients as they were (the mean over one rank), and the control values pass through.
TEST(DistributedTest, NcclWithOneRank_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  ASSERT_TRUE(nccl_available()) << "this CUDA build lacks c10d NCCL";
  DistEnv env;
  env.master_port = 29517;
  env.bucket_bytes = 4096;  // several buckets
  DataParallel dp(env, "cuda:0", 60, /*group_of_one=*/true);
  torch::manual_seed(0);
  TransformerLm m(moe_config(3, 2));
  m->to(torch::kCUDA);
  dp.overlap_gradients(m->parameters());
  EXPECT_GT(dp.bucket_count(), 1);
  auto idx = torch::randint(300, {2, 16}).to(torch::kCUDA);
  dp.arm_gradient_sync();
  m->forward(idx).logits_BTV.to(torch::kFloat32).pow(2).mean().backward();
  std::vector<at::Tensor> before;
  for (const auto& p : m->parameters()) before.push_back(p.grad().clone());
  dp.finish_gradients(m->parameters());
  auto params = m->parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::equal(params[i].grad(), before[i])) << i;
  EXPECT_EQ(dp.mean(3.5), 3.5);
  EXPECT_EQ(dp.max(2.0), 2.0);
}

class LossSink : public core::MetricSink {
 public:
  void log(int64_t step, const std::map<std::string, double>& v) override {
    loss[step] = v.at("loss");
  }
  std::map<int64_t, double> loss;
};

// Training on the GPU with bf16 autocast follows the CPU fp32 run, and its checkpoint (written from
// CUDA tensors, optimizer state included) resumes on the CPU.
TEST(TrainerTest, Bf16OnCudaFollowsCpuAndResumesOnCpu_CUDA) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "CUDA is not available";
  testing::TempDir dir;
  testing::write_byte_shards(dir / "data");
  auto spec = [&](const std::string& out, const std::string& device) {
    TrainSpec t;
    t.model = testing::small_config(256);
    t.model.ffn_experts = 3;
    t.model.attn_experts = 3;
    t.data_dir = dir / "data";
    t.mix = {{"math", 1.0}};
    t.batch_size = 4;
    t.tokens = 4 * 16 * 12;
    t.log_every = 1;
    t.optim.lr = 3e-3;
    t.seed = 7;
    t.out_dir = dir / out;
    t.placement = resolve_placement(device, "auto", 0);
    return t;
  };
  LossSink cpu, gpu;
  train(spec("cpu", "cpu"), cpu);
  TrainSpec g = spec("gpu", "cuda");
  ASSERT_TRUE(g.placement.bf16);
  g.stop_after_steps = 6;
  EXPECT_TRUE(train(g, gpu).preempted);
  TrainSpec rest = spec("gpu", "cpu");  // the GPU checkpoint resumes on the CPU
  TrainOutcome out = train(rest, gpu);
  ASSERT_EQ(out.steps, 12);
  for (int64_t step : {1, 6, 12})
    EXPECT_NEAR(gpu.loss.at(step), cpu.loss.at(step), 0.05 * cpu.loss.at(step)) << step;
}

}  // namespace
}  // namespace upcycle::stages
