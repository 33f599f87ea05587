#include "stages/train/throughput.h"

#include <filesystem>
#include <random>
#include <vector>

#include "core/atomic_file.h"
#include "core/metric_sink.h"
#include "stages/data/data_layout.h"
#include "stages/data/token_shard.h"
#include "stages/train/device.h"
#include "stages/train/trainer.h"

namespace upcycle::stages {

double train_tokens_per_s(const ModelConfig& m, int64_t batch, int64_t micro_batch, int64_t steps,
                          const std::string& dir, const std::string& device,
                          const std::string& precision) {
  core::make_dirs(dir + "/data/shards");
  std::mt19937_64 rng(0);
  std::uniform_int_distribution<uint32_t> token(0, static_cast<uint32_t>(m.vocab - 1));
  std::vector<uint32_t> tokens(
      static_cast<size_t>(std::max<int64_t>(1 << 20, 4 * batch * (m.seq_len + 1))));
  for (auto& t : tokens) t = token(rng);
  for (const char* split : {"train", "valid"}) {
    write_token_shard(shard_path(dir + "/data", "synthetic", split), tokens, m.vocab);
  }
  TrainSpec t;
  t.model = m;
  t.data_dir = dir + "/data";
  t.mix = {{"synthetic", 1.0}};
  t.batch_size = batch;
  t.micro_batch = micro_batch;
  t.tokens = (steps + 2) * batch * m.seq_len;  // 2 untimed warm-up steps, then `steps` timed
  t.log_every = steps + 2;
  t.eval_windows = 1;
  t.optim.lr = 3e-4;
  t.out_dir = dir + "/job";
  t.placement = resolve_placement(device, precision, 0);
  core::NullMetricSink sink;
  auto out = train(t, sink);
  std::filesystem::remove_all(dir);
  return out.tokens_per_s;
}

}  // namespace upcycle::stages
