// The cost model: FLOPs from the accounting, throughput from the store, a bench or the MFU
// assumption (in that order), and time limits from estimates.
#include "runner/cost.h"
#include "runner/memory_fit.h"
#include "stages/arch/accounting.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace upcycle::runner {
namespace {

const std::string kTiny = std::string(UPCYCLE_SOURCE_DIR) + "/recipes/ci/tiny.yaml";

TEST(CostTest, TimeLimitsRoundUpWithSafetyAndAFloor) {
  EXPECT_EQ(slurm_duration(61), "0-00:02:00");
  EXPECT_EQ(slurm_duration(86400 + 3600 + 1), "1-01:01:00");
  CostSettings c;
  c.safety = 2;
  c.min_minutes = 10;
  EXPECT_EQ(time_limit({"mfu", 1, 3600, 0}, c), "0-02:00:00");
  EXPECT_EQ(time_limit({"mfu", 1, 60, 0}, c), "0-00:10:00");
  EXPECT_EQ(time_limit({}, c), "");
}

TEST(CostTest, TrainJobsFromTheMfuAssumptionThenFromTheStoreAndTheBench) {
  const Recipe r = load_recipe(kTiny);
  const Plan p = make_plan(r);
  auto costs = estimate_costs(p, r.cost, nullptr);
  ASSERT_EQ(costs.size(), p.jobs.size());
  const size_t seed = p.find("seed") - p.jobs.data(), data = p.find("data") - p.jobs.data();
  EXPECT_EQ(costs[data].source, "");  // no estimate for prepare jobs
  EXPECT_EQ(costs[seed].source, "mfu");
  // cpu_flops x threads over the job's training FLOPs per token
  const double per_token = p.jobs[seed].train_flops / p.jobs[seed].spec.at("tokens").get<double>();
  EXPECT_NEAR(costs[seed].tokens_per_s, r.cost.cpu_flops / per_token,
              1e-6 * costs[seed].tokens_per_s);
  EXPECT_EQ(costs[seed].gpu_hours, 0);

  // A bench measurement wins over the assumption; past jobs of the same shape win over both.
  auto bench = [](const PlannedJob&) { return 1000.0; };
  EXPECT_EQ(estimate_costs(p, r.cost, nullptr, bench)[seed].source, "bench");
  testing::TempDir dir;
  tracking::Store store(dir / "s.sqlite");
  int64_t run = store.upsert_run({"k", "tiny", "tiny", "{}"});
  store.upsert_job(run, {0, p.jobs[seed].key, "seed", "train", core::JobStatus::kPending, 0,
                         std::nullopt, "/d", "", "", "", "{}", p.jobs[seed].shape});
  core::JobResult done;
  done.key = p.jobs[seed].key;
  done.outputs["tokens_per_s"] = "32000";
  store.ingest_job(p.jobs[seed].key, dir.path(), done);
  const JobCost from_store = estimate_costs(p, r.cost, &store, bench)[seed];
  EXPECT_EQ(from_store.source, "store");
  EXPECT_DOUBLE_EQ(from_store.tokens_per_s, 32000);
  EXPECT_DOUBLE_EQ(from_store.seconds, p.jobs[seed].spec.at("tokens").get<double>() / 32000);
}

TEST(CostTest, GpuJobsUseThePeakTimesMfuTimesRanks) {
  const Recipe r =
      load_recipe(kTiny, {"executor=slurm", "slurm={gpus_per_node: 4}",
                          "stages.seed.resources={processes: 4}", "cost={gpu: a100, mfu: 0.5}"});
  const Plan p = make_plan(r);
  const size_t seed = p.find("seed") - p.jobs.data();
  const JobCost c = estimate_costs(p, r.cost, nullptr)[seed];
  const double per_token = p.jobs[seed].train_flops / p.jobs[seed].spec.at("tokens").get<double>();
  EXPECT_NEAR(c.tokens_per_s, 0.5 * 312e12 * 4 / per_token, 1e-6 * c.tokens_per_s);
  EXPECT_NEAR(c.gpu_hours, c.seconds * 4 / 3600, 1e-12);
}

}  // namespace
}  // namespace upcycle::runner

namespace upcycle::runner {
namespace {

// The paper recipes, as `plan --cost` sees them on a GPU cluster: every training stage fits the
// recipe's cost.gpu (an 80 GB H100) by the memory model; without the recipes' zero and recompute
// settings the 2B upcycled stages do not, and plan refuses naming the stage and what would help.
TEST(MemoryFitTest, PaperRecipesFitAnH100AndOversubscriptionIsRefused) {
  for (const char* name : {"bam_590m", "bam_2b"}) {
    const std::string path = std::string(UPCYCLE_SOURCE_DIR) + "/recipes/paper/" + name + ".yaml";
    const Recipe r = load_recipe(path);
    const Plan p = make_plan(r, PlanOptions{true});
    int trained = 0;
    for (const auto& j : p.jobs) {
      const auto f = memory_fit(j, r.cost);
      if (!f) continue;
      ++trained;
      EXPECT_TRUE(f->fits) << name << " " << j.stage << ": "
                           << stages::describe_memory(f->estimate);
      EXPECT_EQ(f->device_bytes, gpu_memory_bytes("h100"));
      EXPECT_LE(f->estimate.peak, f->capacity_bytes);
    }
    EXPECT_EQ(trained, 10) << name;
    EXPECT_NO_THROW(refuse_oversubscribed(p, r.cost));
    const auto json = costs_json(p, estimate_costs(p, r.cost, nullptr), r.cost);
    for (const auto& o : json) {
      if (o.at("kind") == "train") EXPECT_TRUE(o.at("fits").get<bool>()) << o.dump();
    }
  }
  const std::string big = std::string(UPCYCLE_SOURCE_DIR) + "/recipes/paper/bam_2b.yaml";
  const Recipe r =
      load_recipe(big, {"stages.bam_dm.zero=0", "stages.bam_dm.checkpoint_activations=none"});
  const Plan p = make_plan(r, PlanOptions{true});
  try {
    refuse_oversubscribed(p, r.cost);
    ADD_FAILURE() << "bam_dm without ZeRO fits an H100?";
  } catch (const ConfigError& e) {
    const std::string what = std::string(e.what()) + e.hint();
    EXPECT_NE(what.find("stage bam_dm does not fit one h100"), std::string::npos) << what;
    EXPECT_NE(what.find("optimizer"), std::string::npos) << what;      // the largest terms
    EXPECT_NE(what.find("train.zero: 2"), std::string::npos) << what;  // and what would help
    EXPECT_NE(what.find("(fits)"), std::string::npos) << what;
  }
}

// Bytes per parameter of each layout, as docs/scale.md states them: the persistent terms of a
// model with d ranks (no activations in this sum).
TEST(MemoryFitTest, PersistentBytesPerParameterFollowTheLayoutFormulas) {
  stages::ModelConfig m;
  m.d_model = 512;
  m.layers = 4;
  m.vocab = 1024;
  m.ffn_hidden = 1376;
  m.heads = 8;
  m.kv_heads = 8;
  const double P = double(stages::count_params(m).total);
  auto persistent = [&](int64_t zero, int64_t d, bool bf16 = false) {
    stages::MemoryPlan plan;
    plan.zero = zero;
    plan.world = d;
    plan.bf16 = bf16;
    double sum = 0;
    for (const auto& t : stages::estimate_memory(m, plan).persistent) sum += double(t.bytes);
    return sum / P;
  };
  EXPECT_NEAR(persistent(0, 1), 12, 1e-6);           // weights + two moments (.grad comes and goes)
  EXPECT_NEAR(persistent(0, 8), 16, 1e-6);           // + all-reduce buckets
  EXPECT_NEAR(persistent(1, 8), 8 + 8.0 / 8, 1e-6);  // weights, flat grads; moments / d
  EXPECT_NEAR(persistent(2, 8), 4 + 12.0 / 8, 1e-6);  // weights; grads, moments / d
  // bf16: weights of 2 bytes, fp32 masters beside the moments. ZeRO-1 is Megatron-LM's
  // distributed optimizer's 6 + 12/d; ZeRO-2 less.
  EXPECT_NEAR(persistent(1, 8, true), 6 + 12.0 / 8, 1e-6);
  EXPECT_NEAR(persistent(2, 8, true), 2 + 16.0 / 8, 1e-6);
  EXPECT_NEAR(persistent(0, 8, true), 16, 1e-6);  // replicated: fp32 weights (casts come and go)
}

}  // namespace
}  // namespace upcycle::runner
