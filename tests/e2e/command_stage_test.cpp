// The command stage end to end: templated argv run without a shell on a trained model, results in
// lm-evaluation-harness's layout parsed into the store. `cp` stands in for the harness, which needs
// Hugging Face checkpoints and datasets this machine cannot download; the file it copies has the
// harness's v0.4 layout.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

const char* kRecipe = R"(name: cmd
seed: 1
data:
  domains: [general, code, { name: law, max_bytes: 1M }, math]
  max_bytes: 300k
  valid_fraction: 0.1
  test_fraction: 0.1
  tokenizer: { vocab: 384, sample_bytes: 50k }
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0 }, budget: { tokens: 2k }, batch_size: 4 }
  exists: { kind: command, models: [seed], argv: [test, -f, "{checkpoint}/model.safetensors"] }
  harness:
    kind: command
    models: [seed]
    argv: [cp, FIXTURE, "{out}/results_2026-11-22T00-00-00.json"]
    env: { MODEL_NAME: "{model}" }
    parser: lm_eval
)";

TEST(CommandStageTest, RunsAProgramAndIngestsItsResults) {
  testing::TempDir dir;
  std::string text = kRecipe;
  text.replace(text.find("FIXTURE"), 7, UPCYCLE_SOURCE_DIR "/tests/fixtures/lm_eval_results.json");
  core::write_file_atomic(dir / "cmd.yaml", text);

  auto plan = run_binary({UPCYCLE_BINARY, "plan", dir / "cmd.yaml"}, dir.path());
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_NE(plan.output.find("harness/seed"), std::string::npos) << plan.output;

  auto r = run_binary({UPCYCLE_BINARY, "run", dir / "cmd.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  auto rows = store.select(
      "SELECT stage, model, task, metric, filter, value, stderr, n, n_shot FROM v_results "
      "ORDER BY task, metric, filter");
  ASSERT_EQ(rows.rows.size(), 5u);
  EXPECT_EQ(std::get<std::string>(rows.rows[0][0]), "harness/seed");
  EXPECT_EQ(std::get<std::string>(rows.rows[0][1]), "seed");

  auto q = run_binary({UPCYCLE_BINARY, "query", "--where",
                       "task = gsm8k AND filter = 'flexible-extract'", "--format", "json"},
                      dir.path());
  ASSERT_EQ(q.exit_code, 0) << q.output;
  auto j = nlohmann::json::parse(q.output);
  ASSERT_EQ(j.size(), 1u) << q.output;
  EXPECT_TRUE(j[0]["stderr"].is_null());
  EXPECT_EQ(j[0]["n_shot"].get<int>(), 5);
  EXPECT_EQ(j[0]["n"].get<int>(), 100);

  // A failing command fails its job with the exit code in the log, and the run exits non-zero.
  auto bad = run_binary(
      {UPCYCLE_BINARY, "run", dir / "cmd.yaml", "stages.exists.argv=[test, -f, '{out}/nope']",
       "name=cmd-failing"},  // another recipe: a run name of its own
      dir.path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("command exited with code 1"), std::string::npos) << bad.output;

  // Unknown placeholders are caught before anything runs, naming the line.
  auto typo = run_binary(
      {UPCYCLE_BINARY, "plan", dir / "cmd.yaml", "stages.exists.argv=[ls, '{chekpoint}']"},
      dir.path());
  EXPECT_EQ(typo.exit_code, 1);
  EXPECT_NE(typo.output.find("unknown placeholder {chekpoint}"), std::string::npos) << typo.output;
}

}  // namespace
}  // namespace upcycle
