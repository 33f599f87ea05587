#include "runner/plan.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace upcycle::runner {
namespace {

const char* kRecipe = R"(name: t
data: { domains: [general, code, math], tokenizer: { vocab: 512 } }
model: { d_model: 64, layers: 2, heads: 4, ffn_hidden: 128, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0 }, budget: { tokens: 4k } }
  experts: { kind: branch, from: seed, domains: [code, math], budget: { tokens: 2k } }
  bam: { kind: upcycle, method: bam, from: [seed, experts], ffn: { top_k: 2 } }
  eval: { kind: eval, models: [seed, experts, bam] }
)";

Plan plan_of(const std::vector<std::string>& overrides = {}) {
  return make_plan(parse_recipe(kRecipe, "r.yaml", overrides));
}

std::string plan_error(const std::vector<std::string>& overrides) {
  try {
    plan_of(overrides);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(PlanTest, ExpandsBranchesAndOrdersInputsFirst) {
  Plan p = plan_of();
  std::vector<std::string> labels;
  for (const auto& j : p.jobs) labels.push_back(j.stage);
  EXPECT_EQ(labels, (std::vector<std::string>{"data", "seed", "experts/code", "experts/math", "bam", "eval"}));
  const PlannedJob* bam = p.find("bam");
  EXPECT_EQ(bam->model.attn_experts, 3);  // seed + 2 experts
  EXPECT_EQ(bam->spec["inputs"].size(), 3u);
  EXPECT_EQ(p.find("experts/code")->spec["mix"]["general"].get<double>(), 0.1);
  EXPECT_EQ(p.find("eval")->spec["models"].size(), 4u);
}

TEST(PlanTest, KeysAreStableAndChangeOnlyDownstream) {
  Plan a = plan_of(), b = plan_of();
  for (size_t i = 0; i < a.jobs.size(); ++i) EXPECT_EQ(a.jobs[i].key, b.jobs[i].key);
  Plan c = plan_of({"stages.experts.budget.tokens=3k"});
  EXPECT_EQ(a.find("seed")->key, c.find("seed")->key);
  EXPECT_EQ(a.find("data")->key, c.find("data")->key);
  EXPECT_NE(a.find("experts/code")->key, c.find("experts/code")->key);
  EXPECT_NE(a.find("bam")->key, c.find("bam")->key);
  EXPECT_NE(a.find("eval")->key, c.find("eval")->key);
}

TEST(PlanTest, UnknownStageGetsASuggestion) {
  std::string e = plan_error({"stages.bam.from=[seed, expert]"});
  EXPECT_NE(e.find("stages.bam.from: unknown stage 'expert'; did you mean 'experts'?"), std::string::npos) << e;
  EXPECT_NE(e.find("r.yaml:8:"), std::string::npos) << e;
}

TEST(PlanTest, CyclesAreRejected) {
  std::string e = plan_error({"stages.seed.from=bam"});
  EXPECT_NE(e.find("cycle"), std::string::npos) << e;
}

TEST(PlanTest, TopKAboveExpertCountIsRejected) {
  std::string e = plan_error({"stages.bam.ffn.top_k=4"});
  EXPECT_NE(e.find("ffn_top_k"), std::string::npos) << e;
  EXPECT_NE(e.find("3 dense models"), std::string::npos) << e;
}

TEST(PlanTest, UnknownDomainIsRejected) {
  std::string e = plan_error({"stages.experts.domains=[code, lawx]"});
  EXPECT_NE(e.find("domain 'lawx' is not in data.domains"), std::string::npos) << e;
}

}  // namespace
}  // namespace upcycle::runner
