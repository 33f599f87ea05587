// GPU tests: named *_CUDA, skipped (and reported as skipped) where CUDA is unavailable.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/metric_sink.h"
#include "stages/io/checkpoint.h"
#include "stages/model/transformer.h"
#include "stages/train/trainer.h"
#include "stages/upcycle/upcycle_config.h"
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

class LossSink : public core::MetricSink {
 public:
  void log(int64_t step, const std::map<std::string, double>& v) override { loss[step] = v.at("loss"); }
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
  for (int64_t step : {1, 6, 12}) EXPECT_NEAR(gpu.loss.at(step), cpu.loss.at(step), 0.05 * cpu.loss.at(step)) << step;
}

}  // namespace
}  // namespace upcycle::stages
