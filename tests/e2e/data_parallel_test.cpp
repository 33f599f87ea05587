// Data parallelism through c10d Gloo: the same training job run as 2 processes (RANK/WORLD_SIZE,
// each with half of the global batch, gradients all-reduced) gives the loss curve of the 1-process
// run within 1e-5, and only rank 0 writes metrics, the checkpoint and result.json. Launched by hand
// (as srun or torchrun would) and by the local executor (resources.processes), which keeps the
// torchrun variables of its own shell from its jobs.
#include <gtest/gtest.h>

#include <regex>

#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cluster/local_executor.h"
#include "core/atomic_file.h"
#include "core/job_files.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"

namespace upcycle {
namespace {

using testing::run_binary;

std::map<int64_t, double> losses(const std::string& dir) {
  std::map<int64_t, double> out;
  std::string text = core::read_file(dir + "/metrics.jsonl");
  size_t at = 0;
  while (at < text.size()) {
    size_t end = text.find('\n', at);
    auto j = nlohmann::json::parse(text.substr(at, end - at));
    out[j.at("step").get<int64_t>()] = j.at("values").at("loss").get<double>();
    at = end + 1;
  }
  return out;
}

TEST(DataParallelTest, TwoProcessesMatchOneProcess) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "r.yaml", R"(name: ddp
seed: 1
data:
  domains: [general, code]
  max_bytes: 200k
  valid_fraction: 0.1
  test_fraction: 0.1
  tokenizer: { vocab: 384, sample_bytes: 50k }
  task_examples: 0
model: { d_model: 32, layers: 2, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 0.5, code: 0.5 }, budget: { tokens: 6400 }, batch_size: 8,
          log_every: 1, optim: { lr: 3e-3, warmup: 5 } }
)");
  // torchrun's variables left in the shell that runs upcycle do not reach its one-process jobs.
  ::setenv("WORLD_SIZE", "4", 1);
  ::setenv("RANK", "3", 1);
  ::setenv("MASTER_ADDR", "nowhere.invalid", 1);
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml"}, dir.path());
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR"}) ::unsetenv(v);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string single;
  for (const auto& e : std::filesystem::directory_iterator(dir / "runs/jobs")) {
    if (std::filesystem::exists(e.path() / "metrics.jsonl")) single = e.path().string();
  }
  ASSERT_FALSE(single.empty());

  // The same spec for two processes (world_size is the spec's, and a rank count that differs from
  // it is refused), run by two ranks in a fresh directory.
  const std::string ddp = dir / "ddp";
  core::make_dirs(ddp);
  nlohmann::json spec = core::read_json_file(single + "/spec.json");
  spec["world_size"] = 2;
  core::write_file_atomic(ddp + "/spec.json", spec.dump(2));
  const std::string port = std::to_string(cluster::free_loopback_port());
  std::vector<pid_t> ranks;
  for (int rank = 0; rank < 2; ++rank) {
    ::setenv("WORLD_SIZE", "2", 1);
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", port.c_str(), 1);
    ::setenv("UPCYCLE_DDP_BUCKET_KB", "4",
             1);  // dozens of gradient buckets, all-reduced during backward
    ranks.push_back(testing::spawn_binary({UPCYCLE_BINARY, "stage", "--spec", ddp + "/spec.json"},
                                          ddp, ddp + "/rank" + std::to_string(rank) + ".log"));
  }
  for (const char* v :
       {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "UPCYCLE_DDP_BUCKET_KB"})
    ::unsetenv(v);
  for (pid_t p : ranks) {
    int status = 0;
    ::waitpid(p, &status, 0);
    std::string log = core::read_file(ddp + "/rank0.log") + core::read_file(ddp + "/rank1.log");
    if (log.find("no c10d Gloo backend") != std::string::npos) GTEST_SKIP() << "built without Gloo";
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << log;
  }
  EXPECT_NE(core::read_file(ddp + "/rank1.log").find("rank 1 of 2"), std::string::npos);
  std::smatch buckets;
  const std::string rank0 = core::read_file(ddp + "/rank0.log");
  ASSERT_TRUE(
      std::regex_search(rank0, buckets, std::regex("data parallel: (\\d+) gradient buckets")))
      << rank0;
  EXPECT_GT(std::stoi(buckets[1]), 10);

  auto one = losses(single), two = losses(ddp);
  ASSERT_EQ(one.size(), 25u);  // 6400 tokens / (8 x 32) steps, logged every step
  ASSERT_EQ(two.size(), one.size());
  for (const auto& [step, loss] : one) EXPECT_NEAR(two.at(step), loss, 1e-5) << "step " << step;
  EXPECT_LT(one.rbegin()->second, one.begin()->second);  // and it learned
  // Rank 0 wrote the result; the checkpoint holds both ranks' shards.
  auto result = core::read_job_result(ddp);
  ASSERT_TRUE(result.has_value());
  EXPECT_EQ(result->status, "done");
  for (const char* f : {"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                        "optimizer-00002-of-00002.safetensors", "config.json"})
    EXPECT_TRUE(std::filesystem::exists(ddp + "/checkpoint/" + f)) << f;

  // The local executor launches the ranks itself: the same curve again.
  auto local = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "root=runs2",
                           "store=runs2/store.sqlite", "stages.seed.resources.processes=2"},
                          dir.path());
  ASSERT_EQ(local.exit_code, 0) << local.output;
  std::string launched;
  for (const auto& e : std::filesystem::directory_iterator(dir / "runs2/jobs")) {
    if (std::filesystem::exists(e.path() / "metrics.jsonl")) launched = e.path().string();
  }
  ASSERT_FALSE(launched.empty());
  EXPECT_NE(core::read_file(launched + "/log.txt").find("rank 1 of 2"), std::string::npos);
  auto three = losses(launched);
  ASSERT_EQ(three.size(), one.size());
  for (const auto& [step, loss] : one) EXPECT_NEAR(three.at(step), loss, 1e-5) << "step " << step;
}

}  // namespace
}  // namespace upcycle
