// ZeRO-1 and ZeRO-2 (stages/train/optimizer.h) on 2 and 3 CPU ranks through c10d Gloo: a BAM model
// (recipes/ci/tiny.yaml's bam_dm, 20 steps with gradient accumulation) gives the loss curve of the
// one-process replicated run to 1e-5 relative, and its checkpoint resumes under another layout.
// Checkpoints (stages/train/train_checkpoint.h) are written by every rank and reshard: 4 ranks'
// resume on 2 and 3, 1 rank's on 2, each under another layout; a rank killed in the middle of a
// save leaves the previous checkpoint, from which the run resumes to the uninterrupted curve.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

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
// when one failed. Rank `kill_rank` (if any) kills itself in its save at step `kill_step`.
std::string run_ranks(const nlohmann::json& spec, const std::string& dir, int world,
                      int kill_rank = -1, int64_t kill_step = 0) {
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
    if (rank == kill_rank)
      ::setenv("UPCYCLE_TEST_KILL_IN_SAVE", std::to_string(kill_step).c_str(), 1);
    else
      ::unsetenv("UPCYCLE_TEST_KILL_IN_SAVE");
    ranks.push_back(testing::spawn_binary({UPCYCLE_BINARY, "stage", "--spec", dir + "/spec.json"},
                                          dir, dir + "/rank" + std::to_string(rank) + ".log"));
  }
  for (const char* v : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT", "UPCYCLE_DDP_BUCKET_KB",
                        "UPCYCLE_TEST_KILL_IN_SAVE"})
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

// Runs recipes/ci/tiny.yaml with bam_dm at 20 steps of 12 sequences in micro-batches of 2
// (accumulation on every layout), in `dir`; bam_dm's job directory.
std::string run_tiny_bam_dm(const testing::TempDir& dir) {
  auto r = testing::run_binary(
      {UPCYCLE_BINARY, "run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml",
       "stages.bam_dm.batch_size=12", "stages.bam_dm.micro_batch=2",
       "stages.bam_dm.budget.tokens=15360", "stages.bam_dm.log_every=1", "--no-report"},
      dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  for (const auto& e : std::filesystem::directory_iterator(dir / "runs/jobs")) {
    if (std::filesystem::exists(e.path() / "metrics.jsonl") &&
        core::read_json_file((e.path() / "spec.json").string()).value("tokens", 0) == 15360)
      return e.path().string();
  }
  return "";
}

void copy_checkpoint(const std::string& from_job, const std::string& to_job) {
  std::filesystem::create_directories(to_job);
  std::filesystem::copy(from_job + "/checkpoint", to_job + "/checkpoint",
                        std::filesystem::copy_options::recursive);
}

TEST(ZeroTest, ShardedOptimizerMatchesOneReplicatedProcessAndResumes) {
  testing::TempDir dir;
  const std::string single = run_tiny_bam_dm(dir);
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
  copy_checkpoint(dir / "w3z2", resumed);
  ASSERT_TRUE(run_ranks(cont, resumed, 2).empty()) << core::read_file(resumed + "/rank0.log");
  const std::string reference = dir / "reference";
  copy_checkpoint(single, reference);
  ASSERT_TRUE(run_ranks(longer(base), reference, 1).empty());
  auto want = losses(reference), got = losses(resumed);
  EXPECT_EQ(want.begin()->first, 21);  // both resumed after step 20
  expect_same_curve(want, got, "resumed under another layout");
}

// A spec of `steps` steps of 12 sequences, one per micro-batch (12 divides among 1 to 4 ranks).
nlohmann::json steps_of(nlohmann::json spec, int64_t steps, int world, int zero) {
  spec["tokens"] = steps * 12 * 64;
  spec["micro_batch"] = 1;
  spec["world_size"] = world;
  spec["zero"] = zero;
  return spec;
}

TEST(ZeroTest, CheckpointsReshardAndSurviveARankKilledWhileSaving) {
  testing::TempDir dir;
  const std::string single = run_tiny_bam_dm(dir);
  ASSERT_FALSE(single.empty());
  const nlohmann::json base = core::read_json_file(single + "/spec.json");
  auto run = [&](const nlohmann::json& spec, const std::string& name, int world) {
    const std::string out = dir / name;
    const std::string failed = run_ranks(spec, out, world);
    EXPECT_TRUE(failed.empty()) << name << ":\n" << failed;
    return out;
  };

  // 4 steps on 1 rank and on 4 (ZeRO-2): every rank wrote its shards.
  const std::string one = run(steps_of(base, 4, 1, 0), "one", 1);
  if (HasFailure()) return;
  const std::string four = run(steps_of(base, 4, 4, 2), "four", 4);
  for (const char* f : {"model-00004-of-00004.safetensors", "optimizer-00004-of-00004.safetensors"})
    EXPECT_TRUE(std::filesystem::exists(four + "/checkpoint/" + f)) << f;
  EXPECT_NE(core::read_file(four + "/rank0.log").find("checkpoint written: step 4, 4 rank(s)"),
            std::string::npos);

  // Each continued to 8 steps: the 1-rank checkpoint on 1 rank is the reference.
  auto continued = [&](const std::string& from, int world, int zero, const std::string& name) {
    const std::string out = dir / name;
    copy_checkpoint(from, out);
    const std::string failed = run_ranks(steps_of(base, 8, world, zero), out, world);
    EXPECT_TRUE(failed.empty()) << name << ":\n" << failed;
    EXPECT_NE(core::read_file(out + "/rank0.log").find("at step 4 of 8 (48 samples consumed)"),
              std::string::npos)
        << name;
    return losses(out);
  };
  const auto want = continued(one, 1, 0, "one_to_one");
  ASSERT_EQ(want.size(), 4u);
  expect_same_curve(want, continued(four, 2, 0, "four_to_two"), "4 ranks ZeRO-2 -> 2 replicated");
  expect_same_curve(want, continued(four, 3, 1, "four_to_three"), "4 ranks ZeRO-2 -> 3 ZeRO-1");
  expect_same_curve(want, continued(one, 2, 2, "one_to_two"), "1 rank -> 2 ZeRO-2");

  // bf16 precision: under ZeRO the weights are bf16 with fp32 masters. 2 ranks ZeRO-1 follow one
  // process with fp32 weights under autocast (the same bf16 matmuls) to bf16's precision; their
  // checkpoint (masters included) continues on 3 ranks ZeRO-2 as on the same 2 ranks.
  auto bf16 = [&](nlohmann::json spec) {
    spec["precision"] = "bf16";
    return spec;
  };
  const auto autocast = losses(run(bf16(steps_of(base, 4, 1, 0)), "bf16_fp32_weights", 1));
  const std::string two_bf16 = run(bf16(steps_of(base, 4, 2, 1)), "bf16_weights", 2);
  EXPECT_NE(core::read_file(two_bf16 + "/rank0.log").find("bf16 weights, fp32 masters"),
            std::string::npos);
  const auto masters = losses(two_bf16);
  ASSERT_EQ(masters.size(), autocast.size());
  for (const auto& [step, loss] : autocast)  // measured: within 1.1e-4
    EXPECT_NEAR(masters.at(step), loss, 1e-3 * loss) << "bf16 step " << step;
  const std::string header =
      core::read_file(two_bf16 + "/checkpoint/optimizer-00002-of-00002.safetensors")
          .substr(0, 4096);
  EXPECT_NE(header.find("\"master:"), std::string::npos)
      << "the fp32 masters are in the checkpoint";
  auto continued_bf16 = [&](int world, int zero, const std::string& name) {
    const std::string out = dir / name;
    copy_checkpoint(two_bf16, out);
    EXPECT_TRUE(run_ranks(bf16(steps_of(base, 8, world, zero)), out, world).empty()) << name;
    return losses(out);
  };
  const auto same = continued_bf16(2, 1, "bf16_two_to_two");
  const auto other = continued_bf16(3, 2, "bf16_two_to_three");
  ASSERT_EQ(same.size(), 4u);
  ASSERT_EQ(other.size(), 4u);
  // The step after the resume sees the same weights; later steps round the masters' updates to
  // bf16, which turns the ranks' different fp32 summation orders into differences of ~1e-4.
  EXPECT_NEAR(other.at(5), same.at(5), 1e-5 * same.at(5));
  for (const auto& [step, loss] : same)
    EXPECT_NEAR(other.at(step), loss, 1e-3 * loss)
        << "bf16 weights resumed on 3 ranks, step " << step;

  // A rank killed while saving at step 4 (after its weights, before its AdamW state): the run
  // fails, the step-2 checkpoint stays, and the next attempt resumes from it to the curve of an
  // uninterrupted run.
  nlohmann::json spec = steps_of(base, 8, 2, 1);
  spec["checkpoint_every"] = 2;
  const std::string killed = dir / "killed";
  EXPECT_FALSE(run_ranks(spec, killed, 2, /*kill_rank=*/1, /*kill_step=*/4).empty());
  EXPECT_NE(core::read_file(killed + "/rank1.log").find("killing this rank"), std::string::npos);
  EXPECT_NE(core::read_file(killed + "/rank0.log").find("another rank died"), std::string::npos)
      << core::read_file(killed + "/rank0.log");
  int temps = 0;
  for (const auto& e : std::filesystem::directory_iterator(killed)) {
    if (e.path().filename().string().rfind("checkpoint.tmp.", 0) == 0) {
      ++temps;
      EXPECT_TRUE(std::filesystem::exists(e.path() / "model-00002-of-00002.safetensors"));
      EXPECT_FALSE(std::filesystem::exists(e.path() / "config.json"));
    }
  }
  EXPECT_EQ(temps, 1) << "the half-written save";
  EXPECT_EQ(core::read_json_file(killed + "/checkpoint/config.json").at("step"), 2);
  const std::string failed = run_ranks(spec, killed, 2);
  ASSERT_TRUE(failed.empty()) << failed;
  EXPECT_NE(core::read_file(killed + "/rank0.log").find("resuming"), std::string::npos);
  const auto uninterrupted = losses(run(steps_of(base, 8, 1, 0), "uninterrupted", 1));
  expect_same_curve(uninterrupted, losses(killed), "resumed after a rank died while saving");
  for (const auto& e : std::filesystem::directory_iterator(killed)) {
    EXPECT_EQ(e.path().filename().string().find("checkpoint.tmp."), std::string::npos)
        << "the dead attempt's temp was not removed: " << e.path();
  }
}

// The training samples of a run with UPCYCLE_TRACE_SAMPLES: sample index -> "domain part start",
// and how many times each index was drawn.
std::map<int64_t, std::string> traced_samples(const std::string& path, std::map<int64_t, int>& n) {
  std::map<int64_t, std::string> out;
  std::istringstream in(core::read_file(path));
  for (std::string split, domain, part, start; in >> split;) {
    int64_t sample = 0;
    in >> sample >> domain >> part >> start;
    if (split != "train") continue;
    out[sample] = domain + " " + part + " " + start;
    ++n[sample];
  }
  return out;
}

// The sampler's state is the samples consumed plus the seed: 4 ranks for 10 steps, then 2 ranks
// for 10 more from that checkpoint, draw exactly the samples of 1 rank for 20 steps, each once.
TEST(ZeroTest, ResumingOnAnotherWorldSizeDrawsTheSamplesOfOneRank) {
  testing::TempDir dir;
  const std::string single = run_tiny_bam_dm(dir);
  ASSERT_FALSE(single.empty());
  const nlohmann::json base = core::read_json_file(single + "/spec.json");
  auto traced = [&](const nlohmann::json& spec, const std::string& out, int world,
                    const std::string& trace) {
    ::setenv("UPCYCLE_TRACE_SAMPLES", trace.c_str(), 1);
    const std::string failed = run_ranks(spec, out, world);
    ::unsetenv("UPCYCLE_TRACE_SAMPLES");
    EXPECT_TRUE(failed.empty()) << out << ":\n" << failed;
  };
  const std::string one = dir / "one", four = dir / "four";
  traced(steps_of(base, 20, 1, 0), one, 1, dir / "one.trace");
  traced(steps_of(base, 10, 4, 2), four, 4, dir / "resharded.trace");
  if (HasFailure()) return;
  const std::string two = dir / "two";
  copy_checkpoint(four, two);
  traced(steps_of(base, 20, 2, 0), two, 2, dir / "resharded.trace");
  if (HasFailure()) return;
  EXPECT_NE(
      core::read_file(two + "/rank0.log").find("at step 10 of 20 (120 samples consumed) on 2"),
      std::string::npos);

  std::map<int64_t, int> n_one, n_resharded;
  const auto want = traced_samples(dir / "one.trace", n_one);
  const auto got = traced_samples(dir / "resharded.trace", n_resharded);
  ASSERT_EQ(want.size(), 240u);  // 20 steps of 12 samples
  EXPECT_EQ(want.rbegin()->first, 239);
  EXPECT_EQ(got, want);
  for (const auto& [sample, times] : n_resharded) EXPECT_EQ(times, 1) << "sample " << sample;
  // The second half's losses are those of the same halves on one rank (the first half's schedule
  // ends at step 10, the second's at 20).
  const std::string ref = dir / "ref", ref2 = dir / "ref2";
  traced(steps_of(base, 10, 1, 0), ref, 1, dir / "ref.trace");
  copy_checkpoint(ref, ref2);
  traced(steps_of(base, 20, 1, 0), ref2, 1, dir / "ref.trace");
  expect_same_curve(losses(ref2), losses(two), "the second half on 2 ranks");
}

}  // namespace
}  // namespace upcycle
