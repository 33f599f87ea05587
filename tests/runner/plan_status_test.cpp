// `upcycle plan` says why each job will or will not run, naming what changed since the last run.
#include "runner/plan_status.h"

#include <gtest/gtest.h>

#include "runner/plan.h"
#include "tests/support/temp_dir.h"

namespace upcycle::runner {
namespace {

const std::string kTiny = std::string(UPCYCLE_SOURCE_DIR) + "/recipes/ci/tiny.yaml";

void record(tracking::Store& store, const Plan& p, const std::string& run) {
  int64_t id = store.upsert_run({run, "tiny", run, "{}"});
  for (const auto& j : p.jobs) {
    store.upsert_job(id, {0, j.key, j.stage, j.kind, core::JobStatus::kPending, 0, std::nullopt,
                          j.dir, "", "", "", j.keyed.dump(), ""});
  }
}

TEST(PlanStatusTest, DifferingFieldsAreDottedPaths) {
  nlohmann::json a = {{"spec", {{"optim", {{"lr", 1e-3}, {"eps", 1e-8}}}, {"mix", {{"code", 1}}}}},
                      {"inputs", {"k1", "k2"}}};
  nlohmann::json b = a;
  b["spec"]["optim"]["lr"] = 2e-3;
  b["inputs"][1] = "k3";
  b["spec"]["mix"]["math"] = 1;
  EXPECT_EQ(differing_fields(a, b),
            (std::vector<std::string>{"inputs[1]", "spec.optim.lr", "spec.mix.math"}));
  EXPECT_TRUE(differing_fields(a, a).empty());
}

TEST(PlanStatusTest, NamesNeverRunAndChangedFields) {
  testing::TempDir dir;
  const Plan before = make_plan(load_recipe(kTiny, {"root=" + dir.path() + "/runs"}));
  for (const auto& line : explain_plan(before, nullptr)) EXPECT_EQ(line, "will run: never run");

  tracking::Store store(dir / "s.sqlite");
  record(store, before, "a");
  const Plan after =
      make_plan(load_recipe(kTiny, {"root=" + dir.path() + "/runs", "stages.seed.optim.lr=2e-3",
                                    "stages.experts.resources={threads: 2}"}));
  auto why = explain_plan(after, &store);
  ASSERT_EQ(why.size(), after.jobs.size());
  auto line = [&](const std::string& stage) { return why[after.find(stage) - after.jobs.data()]; };
  EXPECT_EQ(line("data"), "will run: planned before, never finished");
  EXPECT_EQ(line("seed"), "will run: changed since its last run (optim.lr)");
  EXPECT_EQ(line("experts/code"),
            "will run: changed since its last run (input seed, numerics.threads)");
  EXPECT_EQ(
      line("bam"),
      "will run: changed since its last run (input seed, input experts/code, input experts/math)");
}

}  // namespace
}  // namespace upcycle::runner
