#include "runner/plan.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "stages/arch/accounting.h"

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
  btx: { kind: upcycle, method: btx, from: [experts], ffn: { top_k: 1 } }
  btx_dm: { kind: train, from: btx, mix: { code: 0.5, math: 0.5 }, budget: { tokens: 6k } }
  bam_cm: { kind: train, from: bam, mix: { code: 0.5, math: 0.5 }, budget: { match: btx_dm, by: flops } }
  bam_dm: { kind: train, from: bam, mix: { code: 0.5, math: 0.5 }, budget: { match: btx_dm } }
  sparse: { kind: upcycle, method: sparse, from: seed, experts: 4, granularity: 2, ffn: { top_k: 2 } }
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
  EXPECT_EQ(labels,
            (std::vector<std::string>{"data", "seed", "experts/code", "experts/math", "bam", "eval",
                                      "btx", "btx_dm", "bam_cm", "bam_dm", "sparse"}));
  const PlannedJob* bam = p.find("bam");
  EXPECT_EQ(bam->model.attn_experts, 3);  // seed + 2 experts
  EXPECT_EQ(bam->spec["inputs"].size(), 3u);
  EXPECT_EQ(p.find("experts/code")->spec["mix"]["general"].get<double>(), 0.1);
  EXPECT_EQ(p.find("eval")->spec["models"].size(), 4u);
}

int64_t training_flops(const PlannedJob& j) {
  int64_t per_step = j.spec["batch_size"].get<int64_t>() * j.model.seq_len;
  int64_t steps = (j.spec["tokens"].get<int64_t>() + per_step - 1) / per_step;
  return steps * per_step * stages::count_flops(j.model).training();
}

TEST(PlanTest, ComputeMatchedBudgetEqualsTheTargetWithinOneStep) {
  Plan p = plan_of();
  const PlannedJob *btx = p.find("btx_dm"), *cm = p.find("bam_cm"), *dm = p.find("bam_dm");
  EXPECT_EQ(dm->spec["tokens"], btx->spec["tokens"]);  // data-matched: the same tokens
  int64_t step_flops = cm->spec["batch_size"].get<int64_t>() * cm->model.seq_len *
                       stages::count_flops(cm->model).training();
  EXPECT_LE(std::llabs(training_flops(*cm) - training_flops(*btx)), step_flops);
  EXPECT_LT(cm->spec["tokens"].get<int64_t>(),
            btx->spec["tokens"].get<int64_t>());        // BAM costs more
  EXPECT_EQ(p.find("btx")->spec["inputs"].size(), 3u);  // the seed joins by default
  EXPECT_EQ(p.find("sparse")->model.ffn_experts, 8);    // E·G
}

TEST(PlanTest, PaperScaleComputeMatchingDoesNotOverflow) {
  // 100B tokens of this d-1024 model is about 1.2e19 training FLOPs, beyond int64 (9.2e18).
  Plan p = plan_of({"model.d_model=1024", "model.heads=8", "model.ffn_hidden=2048",
                    "stages.btx_dm.budget.tokens=100B"});
  auto flops = [](const PlannedJob& j) {
    long double per_step = j.spec["batch_size"].get<int64_t>() * j.model.seq_len;
    long double steps = std::ceil(j.spec["tokens"].get<int64_t>() / per_step);
    return std::make_pair(steps * per_step * stages::count_flops(j.model).training(),
                          per_step * stages::count_flops(j.model).training());
  };
  auto [target, target_step] = flops(*p.find("btx_dm"));
  auto [cm, cm_step] = flops(*p.find("bam_cm"));
  EXPECT_GT(target, 9.3e18L);
  EXPECT_LE(std::fabs(static_cast<double>(cm - target)), static_cast<double>(cm_step));
}

TEST(PlanTest, MatchOfAnUnknownOrCyclicStageIsRejected) {
  std::string e = plan_error({"stages.bam_cm.budget.match=btx_dmm"});
  EXPECT_NE(e.find("stages.bam_cm.budget.match: unknown stage 'btx_dmm'; did you mean 'btx_dm'?"),
            std::string::npos)
      << e;
  e = plan_error({"stages.btx_dm.budget={match: bam_cm, by: flops}"});
  EXPECT_NE(e.find("cycle"), std::string::npos) << e;
  e = plan_error({"stages.bam_cm.budget.match=experts"});
  EXPECT_NE(e.find("match a train stage"), std::string::npos) << e;
}

size_t index_of(const Plan& p, const std::string& stage) {
  return static_cast<size_t>(p.find(stage) - p.jobs.data());
}

TEST(PlanTest, TimeMatchedBudgetIsMeasuredAfterTheMatchedAndRateJobs) {
  Plan p = plan_of({"stages.bam_cm.budget={match: btx_dm, by: time, rate: bam_dm}"});
  const PlannedJob* cm = p.find("bam_cm");
  EXPECT_EQ(cm->spec["tokens"].get<int64_t>(), 0);
  EXPECT_EQ(cm->spec["match_seconds_of"], p.find("btx_dm")->dir);
  EXPECT_EQ(cm->spec["match_rate_of"], p.find("bam_dm")->dir);
  EXPECT_EQ(cm->seconds_of, index_of(p, "btx_dm"));
  // Both run first: they are inputs, so the key follows their keys, and it differs from by: flops.
  EXPECT_LT(index_of(p, "bam_dm"), index_of(p, "bam_cm"));
  const auto& inputs = cm->keyed.at("inputs");
  EXPECT_EQ(inputs.at(inputs.size() - 2), p.find("btx_dm")->key);
  EXPECT_EQ(inputs.back(), p.find("bam_dm")->key);
  EXPECT_NE(cm->key, plan_of().find("bam_cm")->key);
  EXPECT_NE(cm->detail.find("btx_dm's device-seconds x bam_dm's tokens per device-second"),
            std::string::npos)
      << cm->detail;
}

TEST(PlanTest, TimeMatchedBudgetNeedsARateOfTheSameModel) {
  std::string e = plan_error({"stages.bam_cm.budget={match: btx_dm, by: time}"});
  EXPECT_NE(e.find("by: time needs rate: STAGE"), std::string::npos) << e;
  e = plan_error({"stages.bam_cm.budget={match: btx_dm, by: time, rate: btx_dm}"});
  EXPECT_NE(e.find("stages.bam_cm.budget.rate: 'btx_dm' trains another model or batch size"),
            std::string::npos)
      << e;
  e = plan_error({"stages.bam_cm.budget={match: btx_dm, by: time, rate: bam}"});
  EXPECT_NE(e.find("'bam' is a upcycle stage; name a train stage"), std::string::npos) << e;
  e = plan_error({"stages.bam_cm.budget={match: btx_dm, by: flops, rate: bam_dm}"});
  EXPECT_NE(e.find("rate: goes with by: time"), std::string::npos) << e;
  e = plan_error({"stages.bam_cm.budget={tokens: 4k, rate: bam_dm}"});
  EXPECT_NE(e.find("rate: goes with match: STAGE and by: time"), std::string::npos) << e;
  e = plan_error({"stages.bam_cm.budget={match: btx_dm, by: time, rate: bam_dm}",
                  "stages.btx_dm.budget={match: bam_cm}"});
  EXPECT_NE(e.find("cycle"), std::string::npos) << e;
  e = plan_error(
      {"stages.bam_cm.budget={match: btx_dm, by: time, rate: bam_dm}",
       "stages.sparse={kind: train, from: bam, mix: {code: 1}, budget: {match: bam_cm}}"});
  EXPECT_NE(e.find("'bam_cm' has a budget measured at run time (by: time)"), std::string::npos)
      << e;
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
  EXPECT_NE(e.find("stages.bam.from: unknown stage 'expert'; did you mean 'experts'?"),
            std::string::npos)
      << e;
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

namespace upcycle::runner {
namespace {

// Retries are scheduling: not in keys. Threads change how CPU reductions split, so they are in the
// keys of train and eval jobs (not of prepare with BPE or upcycle, whose results do not depend on
// them).
TEST(PlanResourcesTest, StagesOverrideThreadsAndRetries) {
  Plan base = plan_of({"threads=2", "retries=1"});
  Plan wide = plan_of({"threads=2", "retries=1", "stages.experts.resources={threads: 4}",
                       "stages.experts.retries=3"});
  ASSERT_EQ(base.jobs.size(), wide.jobs.size());
  for (size_t i = 0; i < base.jobs.size(); ++i) {
    bool expert = wide.jobs[i].stage_name == "experts";
    bool reads_expert = expert;
    for (size_t d : wide.jobs[i].deps)
      reads_expert = reads_expert || base.jobs[d].key != wide.jobs[d].key;
    EXPECT_EQ(base.jobs[i].key == wide.jobs[i].key, !reads_expert) << wide.jobs[i].stage;
    EXPECT_EQ(wide.jobs[i].threads, expert ? 4 : 2) << wide.jobs[i].stage;
    EXPECT_EQ(wide.jobs[i].retries, expert ? 3 : 1) << wide.jobs[i].stage;
    EXPECT_EQ(wide.jobs[i].spec["threads"], wide.jobs[i].threads);
  }
  EXPECT_NE(plan_error({"stages.seed.resources={threads: 0}"})
                .find("stages.seed.resources.threads: must be in [1, 4096]"),
            std::string::npos);
  EXPECT_NE(plan_error({"stages.seed.resources={gpus: 1}"}).find("unknown key 'gpus'"),
            std::string::npos);
}

}  // namespace
}  // namespace upcycle::runner
