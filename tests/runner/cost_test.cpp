// The cost model: FLOPs from the accounting, throughput from the store, a bench or the MFU
// assumption (in that order), and time limits from estimates.
#include "runner/cost.h"

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
  store.upsert_job(run, {0, p.jobs[seed].key, "seed", "train", "", 0, std::nullopt, "/d", "", "",
                         "", "{}", p.jobs[seed].shape});
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
