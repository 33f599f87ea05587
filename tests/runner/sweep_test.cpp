// Sweeps: a grid expands into one run per point; jobs with equal content keys are shared.
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "runner/kinds/train.h"
#include "runner/run.h"
#include "tests/support/temp_dir.h"

namespace upcycle::runner {
namespace {

const char* kRecipe = R"(name: s
data: { domains: [general, code, math], tokenizer: { vocab: 512 } }
model: { d_model: 64, layers: 2, heads: 4, ffn_hidden: 128, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0 }, budget: { tokens: 4k } }
  experts: { kind: branch, from: seed, domains: [code, math], budget: { tokens: 2k } }
  bam: { kind: upcycle, method: bam, from: experts }
  eval: { kind: eval, models: [bam] }
sweep:
  stages.experts.budget.tokens: [2k, 3k]
  stages.bam.ffn.top_k: [1, 2, 3]
)";

TEST(SweepTest, GridExpandsIntoNamedRunsSharingEqualJobs) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "s.yaml", kRecipe);
  auto recipes = load_recipes(dir / "s.yaml");
  ASSERT_EQ(recipes.size(), 6u);
  EXPECT_EQ(recipes[0].run_name, "s/stages.experts.budget.tokens=2k,stages.bam.ffn.top_k=1");
  EXPECT_EQ(recipes[5].run_name, "s/stages.experts.budget.tokens=3k,stages.bam.ffn.top_k=3");
  EXPECT_EQ(make_plan(recipes[4]).find("bam")->model.ffn_top_k, 2);
  EXPECT_EQ(recipes[4].find_stage("experts")->as<BranchStage>()->train.tokens, 3000);
  std::vector<RunPoint> points;
  for (auto& r : recipes) {
    Plan p = make_plan(r);
    points.push_back({r, p});
  }
  // data and seed: 1 each; experts: 2 per tokens value; bam and eval: one per point.
  EXPECT_EQ(merge_plans(points).jobs.size(), 1 + 1 + 2 * 2 + 6 + 6);
}

TEST(SweepTest, SharedSettingsCannotBeSweptAndBadPointsAreNamed) {
  testing::TempDir dir;
  std::string text = kRecipe;
  core::write_file_atomic(dir / "a.yaml", text + "  store: [x.sqlite, y.sqlite]\n");
  EXPECT_THROW(load_recipes(dir / "a.yaml"), ConfigError);
  core::write_file_atomic(dir / "b.yaml", text.substr(0, text.find("sweep:")) +
                                              "sweep:\n  stages.bam.ffn.top_k: [1, 4]\n");
  // top_k 4 > 3 experts is found when the point is planned; each point parses.
  auto points = load_recipes(dir / "b.yaml");
  ASSERT_EQ(points.size(), 2u);
  try {
    make_plan(points[1]);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ffn_top_k"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace upcycle::runner
