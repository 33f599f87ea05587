// The trainer: exact resume after preemption, and the checkpoint swap that makes it safe.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/metric_sink.h"
#include "stages/io/checkpoint.h"
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
  t.micro_batch = 2;  // gradient accumulation too
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
