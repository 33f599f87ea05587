// include: and defaults: compose recipes from files; errors name the file the bad key is in.
#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "runner/kinds/train.h"
#include "runner/recipe.h"
#include "tests/support/temp_dir.h"

namespace upcycle::runner {
namespace {

const char* kBase = R"(seed: 3
data:
  domains: [general, code, math]
  tokenizer: { vocab: 512 }
model: { d_model: 64, layers: 2, heads: 4, ffn_hidden: 128, seq_len: 32 }
train: { batch_size: 4, optim: { lr: 1e-3 } }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0 }, budget: { tokens: 4k } }
)";

std::string error_of(const std::string& path, const std::vector<std::string>& overrides = {}) {
  try {
    load_recipe(path, overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

class ComposeTest : public ::testing::Test {
 protected:
  void write(const std::string& name, const std::string& text) {
    core::make_dirs(std::filesystem::path(dir_ / name).parent_path().string());
    core::write_file_atomic(dir_ / name, text);
  }
  testing::TempDir dir_;
};

TEST_F(ComposeTest, IncludedFilesMergeUnderTheRecipe) {
  write("base.yaml", kBase);
  write("r.yaml",
        "name: r\ninclude: base.yaml\ntrain: { optim: { warmup: 7 } }\nstages:\n"
        "  seed: { budget: { tokens: 8k } }\n  eval: { kind: eval, models: [seed] }\n");
  Recipe r = load_recipe(dir_ / "r.yaml");
  EXPECT_EQ(r.name, "r");
  EXPECT_EQ(r.seed, 3u);
  ASSERT_EQ(r.stages.size(), 3u);  // base's stages first, then the recipe's
  EXPECT_EQ(r.stages[0].name, "data");
  EXPECT_EQ(r.stages[2].name, "eval");
  const TrainDef& seed = r.stages[1].as<TrainStage>()->train;
  EXPECT_EQ(seed.tokens, 8000);             // the recipe wins
  EXPECT_EQ(seed.settings.batch_size, 4);   // the base's default survives the merge
  EXPECT_EQ(seed.settings.optim.lr, 1e-3);  // maps merge key by key
  EXPECT_EQ(seed.settings.optim.warmup, 7);
  EXPECT_EQ(r.resolved_yaml.find("include"), std::string::npos) << r.resolved_yaml;
  // Overrides apply to the composed recipe.
  EXPECT_EQ(load_recipe(dir_ / "r.yaml", {"seed=9"}).seed, 9u);
}

// An override or a sweep of a key that only an included file or a config group sets applies to it;
// a key nothing defines is refused, naming it.
TEST_F(ComposeTest, OverridesAndSweepsOfIncludedKeysApply) {
  write("base.yaml", kBase);
  write("model/wide.yaml", "d_model: 128\nheads: 8\nffn_hidden: 512\n");
  write("r.yaml",
        "name: r\ndefaults: [base.yaml, { model: wide }]\nsweep: { stages.seed.budget.tokens: [2k, "
        "3k] }\n");
  Recipe r = load_recipe(dir_ / "r.yaml", {"train.optim.lr=5e-4", "model.layers=3"});
  EXPECT_EQ(r.stages[1].as<TrainStage>()->train.settings.optim.lr, 5e-4);
  EXPECT_EQ(r.model.layers, 3);
  const std::vector<Recipe> points =
      load_recipes(dir_ / "r.yaml", {"model.d_model=256", "model.heads=8"});
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[1].stages[1].as<TrainStage>()->train.tokens, 3000);
  EXPECT_EQ(points[1].model.d_model, 256);
  EXPECT_NE(
      error_of(dir_ / "r.yaml", {"train.optim.lrr=1"}).find("train.optim.lrr: unknown key 'lrr'"),
      std::string::npos);
}

TEST_F(ComposeTest, ConfigGroupsLoadUnderTheirKey) {
  write("base.yaml", kBase);
  write("model/wide.yaml", "d_model: 128\nheads: 8\nffn_hidden: 512\n");
  write("r.yaml",
        "name: r\ndefaults: [base.yaml, { model: wide }]\nstages: { eval: { kind: eval, models: "
        "[seed] } }\n");
  Recipe r = load_recipe(dir_ / "r.yaml");
  EXPECT_EQ(r.model.d_model, 128);
  EXPECT_EQ(r.model.layers, 2);  // from base.yaml's model, merged
}

TEST_F(ComposeTest, ErrorsNameTheIncludedFileAndLine) {
  write("base.yaml", std::string(kBase) + "  bad: { kind: trian }\n");
  write("r.yaml", "name: r\ninclude: base.yaml\n");
  std::string e = error_of(dir_ / "r.yaml");
  EXPECT_NE(e.find(dir_ / "base.yaml:10:"), std::string::npos) << e;
  EXPECT_NE(e.find("stages.bad.kind"), std::string::npos) << e;

  write("r2.yaml", "name: r\ninclude: base2.yaml\nstages: { seed: { budget: { tokkens: 1 } } }\n");
  write("base2.yaml", kBase);
  e = error_of(dir_ / "r2.yaml");
  EXPECT_NE(e.find(dir_ / "r2.yaml:3:"), std::string::npos)
      << e;  // the key is in the recipe itself
  EXPECT_NE(e.find("did you mean 'tokens'"), std::string::npos) << e;
}

TEST_F(ComposeTest, MissingFilesAndCyclesAreErrors) {
  write("r.yaml", "name: r\ninclude: [nope.yaml]\n");
  EXPECT_NE(error_of(dir_ / "r.yaml").find("nope.yaml' does not exist"), std::string::npos);
  write("a.yaml", "include: b.yaml\n");
  write("b.yaml", "include: a.yaml\n");
  write("r.yaml", "name: r\ninclude: a.yaml\n");
  std::string e = error_of(dir_ / "r.yaml");
  EXPECT_NE(e.find("include cycle"), std::string::npos) << e;
  EXPECT_NE(e.find(dir_ / "b.yaml:1:"), std::string::npos) << e;
  write("r.yaml", "name: r\ndefaults: [{ model: a, data: b }]\n");
  EXPECT_NE(error_of(dir_ / "r.yaml").find("expected {group: name}"), std::string::npos);
  write("bad.yaml", "x: [1, 2\n");
  write("r.yaml", "name: r\ninclude: bad.yaml\n");
  EXPECT_NE(error_of(dir_ / "r.yaml").find("bad.yaml:2:1: YAML syntax error"), std::string::npos)
      << error_of(dir_ / "r.yaml");
}

}  // namespace
}  // namespace upcycle::runner
