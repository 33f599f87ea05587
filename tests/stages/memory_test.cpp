// The memory model (stages/arch/memory.h) against the trainer's measured peak (the reporting CPU
// allocator, stages/train/peak_memory.h): dense and BAM, replicated and ZeRO-1, with and without
// activation recomputation, one configuration large enough that the peak is hundreds of MB, and
// bf16 (CPU autocast; fp32 weights, and bf16 weights with fp32 masters under ZeRO-1). Each
// estimate must be within 10% of the measurement. The same table, for a benchmark, is
// docs/benchmarks.md's (scripts/bench_memory.sh runs this test and prints it).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>

#include "core/metric_sink.h"
#include "stages/arch/memory.h"
#include "stages/train/trainer.h"
#include "tests/support/byte_corpus.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

class LastValues : public core::MetricSink {
 public:
  void log(int64_t, const std::map<std::string, double>& values) override {
    for (const auto& [k, v] : values) last[k] = v;
  }
  std::map<std::string, double> last;
};

struct Case {
  const char* name;
  int64_t d_model, layers, ffn_hidden, vocab, experts, micro;
  int64_t zero;
  Recompute recompute;
  bool bf16 = false;  ///< CPU autocast; with ZeRO, bf16 weights and fp32 masters
};

ModelConfig config_of(const Case& c) {
  ModelConfig m;
  m.d_model = c.d_model;
  m.layers = c.layers;
  m.heads = c.d_model / 64;
  m.kv_heads = m.heads;
  m.ffn_hidden = c.ffn_hidden;
  m.vocab = c.vocab;
  m.seq_len = 256;
  m.attn_experts = c.experts;
  m.ffn_experts = c.experts;
  return m;
}

TEST(MemoryModelTest, EstimateIsWithinTenPercentOfTheMeasuredPeak) {
  testing::TempDir dir;
  testing::write_byte_shards(dir / "data", "math", 60000);
  const std::vector<Case> cases = {
      {"dense", 256, 4, 688, 8192, 1, 8, 0, Recompute::kNone},
      {"dense, block recompute", 256, 4, 688, 8192, 1, 8, 0, Recompute::kBlock},
      {"BAM 4 experts", 256, 4, 688, 8192, 4, 8, 0, Recompute::kNone},
      {"BAM 4 experts, ZeRO-1", 256, 4, 688, 8192, 4, 8, 1, Recompute::kNone},
      {"BAM 4 experts, ZeRO-1, block", 256, 4, 688, 8192, 4, 8, 1, Recompute::kBlock},
      {"BAM 4 experts, selective", 256, 4, 688, 8192, 4, 8, 0, Recompute::kSelective},
      {"dense d512 V32k, ZeRO-2", 512, 4, 1376, 32000, 1, 8, 2, Recompute::kNone},
      {"BAM d512 V32k", 512, 4, 1376, 32000, 4, 4, 0, Recompute::kNone},
      {"BAM 4 experts, bf16 autocast", 256, 4, 688, 8192, 4, 8, 0, Recompute::kNone, true},
      {"BAM 4 experts, bf16 weights, ZeRO-1", 256, 4, 688, 8192, 4, 8, 1, Recompute::kNone, true},
  };
  std::printf(
      "| configuration | estimate (MiB) | measured (MiB) | estimate / measured |\n"
      "|---|---:|---:|---:|\n");
  for (const Case& c : cases) {
    TrainSpec t;
    t.model = config_of(c);
    t.data_dir = dir / "data";
    t.mix = {{"math", 1.0}};
    t.batch_size = c.micro;
    t.micro_batch = c.micro;
    t.tokens = 3 * c.micro * 256;
    t.eval_windows = c.micro;
    t.zero = c.zero;
    t.checkpoint_activations = c.recompute;
    t.placement.bf16 = c.bf16;
    t.out_dir = dir / (std::string("job") + std::to_string(&c - cases.data()));
    LastValues sink;
    train(t, sink);
    const double est = sink.last.at("memory/estimate_bytes");
    const double got = sink.last.at("memory/peak_bytes");
    std::printf("| %s | %.1f | %.1f | %.3f |\n", c.name, est / (1 << 20), got / (1 << 20),
                est / got);
    EXPECT_NEAR(est / got, 1.0, 0.10) << c.name;
  }
}

}  // namespace
}  // namespace upcycle::stages
