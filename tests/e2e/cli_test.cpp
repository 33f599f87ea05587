// The CLI's contract: help for every command, exit code 1 with a clear message on bad input.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"

namespace upcycle {
namespace {

using testing::run_binary;

TEST(CliTest, HelpListsEveryCommand) {
  auto r = run_binary({UPCYCLE_BINARY, "--help"});
  EXPECT_EQ(r.exit_code, 0);
  for (const char* cmd : {"run", "plan", "status", "query", "table", "params", "stage"}) {
    EXPECT_NE(r.output.find(std::string("  ") + cmd + " "), std::string::npos) << cmd << "\n"
                                                                               << r.output;
    auto sub = run_binary({UPCYCLE_BINARY, cmd, "--help"});
    EXPECT_EQ(sub.exit_code, 0) << cmd << "\n" << sub.output;
    EXPECT_NE(sub.output.find(std::string("usage: upcycle ") + cmd), std::string::npos)
        << sub.output;
  }
}

TEST(CliTest, UnknownCommandIsAUserError) {
  auto r = run_binary({UPCYCLE_BINARY, "rnu"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("unknown command 'rnu'; did you mean 'run'?"), std::string::npos)
      << r.output;
}

TEST(CliTest, MissingRecipeNamesThePath) {
  auto r = run_binary({UPCYCLE_BINARY, "run", "/nonexistent/recipe.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("/nonexistent/recipe.yaml: recipe file not found"), std::string::npos)
      << r.output;
}

TEST(CliTest, UnparsableYamlNamesTheLine) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "bad.yaml", "name: x\nstages:\n  a: [1, 2\n  b: 3\n");
  auto r = run_binary({UPCYCLE_BINARY, "plan", dir / "bad.yaml"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find(dir / "bad.yaml:4:"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("YAML syntax error"), std::string::npos) << r.output;
}

TEST(CliTest, UnknownOptionIsAUserError) {
  auto r = run_binary({UPCYCLE_BINARY, "status", "--bogus"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("bogus"), std::string::npos) << r.output;
}

TEST(CliTest, QueryWithoutStoreSaysSo) {
  testing::TempDir dir;
  auto r = run_binary({UPCYCLE_BINARY, "query", "--store", dir / "none.sqlite"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.output.find("no store here"), std::string::npos) << r.output;
}

TEST(CliTest, PlanOfTheTinyRecipeRunsNothing) {
  testing::TempDir dir;
  auto r =
      run_binary({UPCYCLE_BINARY, "plan", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml"}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("experts/code  [train v3]"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "runs"));
}

// `plan --cost --format json` prints one JSON document on stdout (messages go to stderr): one
// object per job, train jobs with their peak memory per GPU and whether it fits. A stage that does
// not fit is refused by plan and by run before anything is queued, unless --allow-oversubscribe.
TEST(CliTest, PlanCostJsonAndMemoryRefusal) {
  testing::TempDir dir;
  const std::string recipe = UPCYCLE_SOURCE_DIR "/recipes/paper/bam_2b.yaml";
  auto r = run_binary(
      {"/bin/sh", "-c",
       std::string(UPCYCLE_BINARY) + " plan " + recipe + " --cost --format json 2>/dev/null"},
      dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  int train = 0;
  for (const auto& o : j) {
    if (o.at("kind") != "train") continue;
    ++train;
    EXPECT_TRUE(o.at("fits").get<bool>()) << o.dump();
    EXPECT_GT(o.at("peak_memory_bytes").get<int64_t>(), int64_t(10) << 30);
    EXPECT_EQ(o.at("gpu_memory_bytes").get<int64_t>(), int64_t(81559) << 20);
    EXPECT_GT(o.at("gpu_hours").get<double>(), 100);
    EXPECT_TRUE(o.at("memory_breakdown").contains("weights"));
  }
  EXPECT_EQ(train, 10);
  const std::vector<std::string> too_big = {"stages.bam_dm.zero=0",
                                            "stages.bam_dm.checkpoint_activations=none"};
  for (const char* cmd : {"plan", "run"}) {
    std::vector<std::string> argv = {UPCYCLE_BINARY, cmd, recipe};
    argv.insert(argv.end(), too_big.begin(), too_big.end());
    auto refused = run_binary(argv, dir.path());
    EXPECT_EQ(refused.exit_code, 1) << refused.output;
    EXPECT_NE(refused.output.find("stage bam_dm does not fit one h100"), std::string::npos)
        << refused.output;
    EXPECT_NE(refused.output.find("--allow-oversubscribe"), std::string::npos);
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "runs/store.sqlite"));  // nothing was queued
  std::vector<std::string> argv = {UPCYCLE_BINARY, "plan", recipe, "--allow-oversubscribe"};
  argv.insert(argv.end(), too_big.begin(), too_big.end());
  EXPECT_EQ(run_binary(argv, dir.path()).exit_code, 0);
  auto bad = run_binary({UPCYCLE_BINARY, "plan", recipe, "--format", "json"}, dir.path());
  EXPECT_EQ(bad.exit_code, 1) << bad.output;  // json goes with --cost
}

}  // namespace
}  // namespace upcycle
