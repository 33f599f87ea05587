// ZeRO-1 and ZeRO-2 (stages/train/optimizer.h) on 2 and 3 CPU ranks through c10d Gloo: a BAM model
// (recipes/ci/tiny.yaml's bam_dm, 20 steps with gradient accumulation) gives the loss curve of the
// one-process replicated run to 1e-5 relative, and its checkpoint resumes under another layout.
#include <gtest/gtest.h>

#include <sys/wait.h>

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

std::map<int64_t, double> losses(const std::string& dir) {
  std::map<int64_t, double> out;
  const std::string text = core::read_file(dir + "/metrics.jsonl");
  for (size_t at = 0; at < text.size();) {
    const size_t end = text.find('\n', at);
    auto j = nlohmann::json::parse(text.substr(at, end - at));
    if (j.at("values").contains("loss"))
      out[j.at("step").get<int64_t>()] = j.at("values").at("loss").get<double>();
    at = end + 1;
  }
  return out;
}

// Runs `spec` as `world` ranks in `dir` (as srun or torchrun would start them); the ranks' logs
// when one failed.
std::string run_ranks(const nlohmann::json& spec, const std::string& dir, int world) {
  core::make_dirs(dir);
  core::write_file_atomic(dir + "/spec.json", spec.dump(2));
  const std::string port = std::to_string(cluster::free_loopback_port());
  std::vector<pid_t> ranks;
  for (int rank = 0; rank < world; ++rank) {
    ::setenv("WORLD_SIZE", std::to_string(world).c_str(), 1);
    ::setenv("RANK", std::to_string(rank).c_str(), 1);
    ::setenv("MASTER_ADDR", "127.0.0.1", 1);
    ::setenv("MASTER_PORT", port.c_str(), 1);
    ::setenv("UPCYCLE_DDP_BUCKET_KB", "16", 1);  // many buckets, each sharded
    ranks.push_back(testing::spawn_binary({UPCYCLE_BINARY, "stage", "--spec", dir + "/spec.json"},
                                          dir, dir + "/rank" + std::to_string(rank) + ".log"));
  }
  for (const char* v :
       {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "UPCYCLE_DDP_BUCKET_KB"})
    ::unsetenv(v);
  std::string failed;
  for (size_t r = 0; r < ranks.size(); ++r) {
    int status = 0;
    ::waitpid(ranks[r], &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      failed += core::read_file(dir + "/rank" + std::to_string(r) + ".log");
  }
  return failed;
}

void expect_same_curve(const std::map<int64_t, double>& want, const std::map<int64_t, double>& got,
                       const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (const auto& [step, loss] : want)
    EXPECT_NEAR(got.at(step), loss, 1e-5 * std::abs(loss)) << what << ", step " << step;
}

TEST(ZeroTest, ShardedOptimizerMatchesOneReplicatedProcessAndResumes) {
  testing::TempDir dir;
  // 20 steps of 12 sequences, in micro-batches of 2 (accumulation on every layout).
  auto r = testing::run_binary(
      {UPCYCLE_BINARY, "run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml",
       "stages.bam_dm.batch_size=12", "stages.bam_dm.micro_batch=2",
       "stages.bam_dm.budget.tokens=15360", "stages.bam_dm.log_every=1", "--no-report"},
      dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string single;
  for (const auto& e : std::filesystem::directory_iterator(dir / "runs/jobs")) {
    if (std::filesystem::exists(e.path() / "metrics.jsonl") &&
        core::read_json_file((e.path() / "spec.json").string()).value("tokens", 0) == 15360)
      single = e.path().string();
  }
  ASSERT_FALSE(single.empty());
  const auto one = losses(single);
  ASSERT_EQ(one.size(), 20u);

  const nlohmann::json base = core::read_json_file(single + "/spec.json");
  for (int world : {2, 3}) {
    for (int zero : {1, 2}) {
      nlohmann::json spec = base;
      spec["world_size"] = world;
      spec["zero"] = zero;
      const std::string what = std::to_string(world) + " ranks, zero " + std::to_string(zero);
      const std::string out = dir / ("w" + std::to_string(world) + "z" + std::to_string(zero));
      const std::string failed = run_ranks(spec, out, world);
      if (failed.find("no c10d Gloo backend") != std::string::npos) GTEST_SKIP() << "no Gloo";
      ASSERT_TRUE(failed.empty()) << what << ":\n" << failed;
      EXPECT_NE(core::read_file(out + "/rank0.log")
                    .find("ZeRO-" + std::to_string(zero) + " over " + std::to_string(world)),
                std::string::npos)
          << what;
      expect_same_curve(one, losses(out), what);
    }
  }

  // Resumable: the 3-rank ZeRO-2 run's checkpoint (weights and sharded AdamW state, written as
  // one state file) continues under ZeRO-1 on 2 ranks for 4 more steps, as the 1-process run
  // continues from its own checkpoint.
  auto longer = [&](nlohmann::json spec) {
    spec["tokens"] = 24 * 12 * 64;
    return spec;
  };
  nlohmann::json cont = longer(base);
  cont["world_size"] = 2;
  cont["zero"] = 1;
  const std::string resumed = dir / "resumed";
  std::filesystem::create_directories(resumed);
  std::filesystem::copy(dir / "w3z2/checkpoint", resumed + "/checkpoint",
                        std::filesystem::copy_options::recursive);
  ASSERT_TRUE(run_ranks(cont, resumed, 2).empty()) << core::read_file(resumed + "/rank0.log");
  const std::string reference = dir / "reference";
  std::filesystem::create_directories(reference);
  std::filesystem::copy(single + "/checkpoint", reference + "/checkpoint",
                        std::filesystem::copy_options::recursive);
  ASSERT_TRUE(run_ranks(longer(base), reference, 1).empty());
  auto want = losses(reference), got = losses(resumed);
  EXPECT_EQ(want.begin()->first, 21);  // both resumed after step 20
  expect_same_curve(want, got, "resumed under another layout");
}

}  // namespace
}  // namespace upcycle
