// The CLI's contract: help for every command, exit code 1 with a clear message on bad input.
#include <gtest/gtest.h>

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
  EXPECT_NE(r.output.find("experts/code  [train v1]"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "runs"));
}

}  // namespace
}  // namespace upcycle
