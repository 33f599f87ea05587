#include "runner/recipe.h"
#include "runner/kinds/train.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace upcycle::runner {
namespace {

const char* kRecipe = R"(name: t
seed: 3
data:
  domains: [general, code, math]
  tokenizer: { vocab: 512 }
model: { d_model: 64, layers: 2, heads: 4, ffn_hidden: 128, seq_len: 32 }
train: { batch_size: 4 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0 }, budget: { tokens: 4k }, optim: { lr: 1e-3 } }
  experts: { kind: branch, from: seed, domains: [code, math], budget: { tokens: 2k } }
  bam: { kind: upcycle, method: bam, from: [seed, experts] }
  eval: { kind: eval, models: [seed, bam] }
)";

std::string error_of(const std::string& text, const std::vector<std::string>& overrides = {}) {
  try {
    parse_recipe(text, "r.yaml", overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(RecipeTest, ParsesIntoTypedStructs) {
  Recipe r = parse_recipe(kRecipe, "r.yaml");
  EXPECT_EQ(r.name, "t");
  EXPECT_EQ(r.seed, 3u);
  EXPECT_EQ(r.model.d_model, 64);
  EXPECT_EQ(r.model.vocab, 512);  // from the tokenizer
  ASSERT_EQ(r.stages.size(), 5u);
  ASSERT_NE(r.stages[1].as<TrainStage>(), nullptr);
  EXPECT_EQ(r.stages[1].kind_name(), "train");
  EXPECT_EQ(r.stages[1].as<TrainStage>()->train.tokens, 4000);
  EXPECT_EQ(r.stages[1].as<TrainStage>()->train.settings.batch_size, 4);  // recipe-level default
  EXPECT_EQ(r.stages[2].as<TrainStage>(), nullptr);                       // a branch stage
  EXPECT_EQ(r.stages[2].as<BranchStage>()->domains, (std::vector<std::string>{"code", "math"}));
  EXPECT_EQ(r.flat.at("stages.seed.optim.lr"), "1e-3");
}

TEST(RecipeTest, YamlSyntaxErrorNamesTheLine) {
  std::string e = error_of("name: t\nstages:\n  a: { kind: prepare\n  b: 1\n");
  EXPECT_NE(e.find("r.yaml:4:"), std::string::npos) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(RecipeTest, UnknownKeySuggestsTheClosest) {
  std::string text = kRecipe;
  text.replace(text.find("optim: { lr"), 11, "optim: { lrr");
  std::string e = error_of(text);
  EXPECT_NE(e.find("r.yaml:10:"), std::string::npos) << e;
  EXPECT_NE(e.find("stages.seed.optim.lrr"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'lr'"), std::string::npos) << e;
}

TEST(RecipeTest, TypeAndRangeErrorsNameFileLineAndKey) {
  std::string text = kRecipe;
  text.replace(text.find("d_model: 64"), 11, "d_model: 6x");
  std::string e = error_of(text);
  EXPECT_NE(e.find("r.yaml:6:"), std::string::npos) << e;
  EXPECT_NE(e.find("model.d_model"), std::string::npos) << e;
  e = error_of(kRecipe, {"model.heads=5"});
  EXPECT_NE(e.find("model.heads: must divide d_model"), std::string::npos) << e;
}

TEST(RecipeTest, OverridesApplyBeforeValidation) {
  Recipe r = parse_recipe(kRecipe, "r.yaml", {"stages.seed.budget.tokens=8k", "seed=9"});
  EXPECT_EQ(r.find_stage("seed")->as<TrainStage>()->train.tokens, 8000);
  EXPECT_EQ(r.seed, 9u);
  EXPECT_NE(error_of(kRecipe, {"nonsense"}).find("expected key.path=value"), std::string::npos);
}

TEST(RecipeTest, MissingFileIsAConfigError) {
  EXPECT_THROW(load_recipe("/nonexistent/recipe.yaml"), ConfigError);
}

}  // namespace
}  // namespace upcycle::runner
