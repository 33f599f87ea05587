// Runs recipes/ci/methods.yaml (BAM expert/shared KV, BTX, NVIDIA sparse, dense; DM and CM budgets)
// through the real binary and checks the store.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

double final_metric(tracking::Store& s, const std::string& stage, const std::string& key) {
  auto rs = s.select("SELECT value FROM v_final_metrics WHERE stage = ? AND key = ?", {stage, key});
  return std::get<double>(rs.rows.at(0).at(0));
}

TEST(MethodsRecipeTest, EveryMethodTrainsAndIsEvaluatedUnderMatchedBudgets) {
  testing::TempDir dir;
  auto r = run_binary({UPCYCLE_BINARY, "run", UPCYCLE_SOURCE_DIR "/recipes/ci/methods.yaml"},
                      dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);

  auto ppl = store.select("SELECT DISTINCT model FROM v_results WHERE metric = 'ppl'");
  std::set<std::string> models;
  for (const auto& row : ppl.rows) models.insert(std::get<std::string>(row[0]));
  EXPECT_EQ(models, (std::set<std::string>{"seed", "experts/code", "experts/math", "btx_dm",
                                           "bam_dm", "bam_cm", "bam_shared_cm", "sparse_cm",
                                           "dense_cm", "bam_cm_time", "btm"}));
  auto bad = store.select(
      "SELECT COUNT(*) FROM v_results WHERE metric = 'ppl' AND NOT (value > 1 AND value < 512)");
  EXPECT_EQ(std::get<int64_t>(bad.rows[0][0]), 0);

  // DM sees BTX's tokens; CM sees fewer where a token costs more FLOPs (soft attention experts),
  // and the dense baseline more.
  double btx = final_metric(store, "btx_dm", "tokens");
  EXPECT_EQ(final_metric(store, "bam_dm", "tokens"), btx);
  EXPECT_LT(final_metric(store, "bam_cm", "tokens"), btx);
  EXPECT_LT(final_metric(store, "bam_cm", "tokens"),
            final_metric(store, "bam_shared_cm", "tokens"));
  EXPECT_GT(final_metric(store, "dense_cm", "tokens"), btx);

  // By time: BTX's measured device-seconds (one process) at BAM DM's measured tokens per second,
  // rounded up to whole steps of 8 x 64 tokens (common.yaml).
  auto throughput = [&](const std::string& stage) {
    auto rs = store.select(
        "SELECT j.tokens_per_s FROM jobs j JOIN run_jobs rj ON rj.job_id = j.id WHERE rj.stage = ?",
        {stage});
    return std::get<double>(rs.rows.at(0).at(0));
  };
  const double budget = btx / throughput("btx_dm") * throughput("bam_dm");
  const double per_step = 8 * 64, steps = std::ceil(std::floor(budget) / per_step);
  EXPECT_NEAR(final_metric(store, "bam_cm_time", "tokens"), steps * per_step, per_step)
      << "budget " << budget;

  // The upcycled MoEs route: utilisation is logged for every FFN expert of BTX and sparse (E·G =
  // 4).
  auto util = store.select(
      "SELECT COUNT(DISTINCT key) FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id "
      "WHERE rj.stage = 'sparse_cm' AND m.key LIKE 'util/l0/e%'");
  EXPECT_EQ(std::get<int64_t>(util.rows[0][0]), 4);
}

}  // namespace
}  // namespace upcycle
