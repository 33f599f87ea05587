// Each job's Slurm request settled against a site (no cluster: the site is given): time: auto
// capped at MaxTime or slurm.max_time with the rest a requeue chain, signal_seconds: auto from the
// store's measured checkpoint saves, and the site's limits refused by name.
#include "runner/slurm_limits.h"

#include <gtest/gtest.h>

#include "tests/support/temp_dir.h"

namespace upcycle::runner {
namespace {

const std::string kTiny = std::string(UPCYCLE_SOURCE_DIR) + "/recipes/ci/tiny.yaml";

std::vector<cluster::Partition> site() {
  cluster::Partition p;
  p.name = "gpu";
  p.is_default = true;
  p.max_time_s = 3600;  // 1 h
  p.max_nodes = 2;
  p.nodes = {{"g1", 32, 256000, 4}, {"g2", 32, 256000, 4}};
  return {p};
}

std::string line_of(const std::vector<std::string>& lines, const std::string& stage) {
  for (const auto& l : lines) {
    if (l.rfind(stage + ": ", 0) == 0) return l;
  }
  return "";
}

TEST(SlurmLimitsTest, AnEstimateOverTheCapBecomesAChainSignalledFromMeasuredSaves) {
  // cpu_flops chosen so that the seed's estimate x safety is about 10 h.
  const Recipe r = load_recipe(kTiny, {"executor=slurm", "cost.min_minutes=600"});
  Plan p = make_plan(r);
  const size_t seed = p.find("seed") - p.jobs.data();
  testing::TempDir dir;
  tracking::Store store(dir / "s.sqlite");
  int64_t run = store.upsert_run({"k", "tiny", "tiny", "{}"});
  store.upsert_job(run, {0, "other", "seed", "train", core::JobStatus::kPending, 0, std::nullopt,
                         "/d", "", "", "", "{}", p.jobs[seed].shape});
  core::JobResult done;
  done.key = "other";
  done.outputs["checkpoint_save_s"] = "100";
  store.ingest_job("other", dir.path(), done);
  const auto lines = settle_slurm_limits(p, r.cost, &store, site());
  const auto& s = p.jobs[seed].slurm;
  // 2 x 100 s + 60 s = 260 s before the limit; each 1 h link trains 3600 - 260 - 60 s.
  EXPECT_EQ(s.signal_seconds, 260);
  EXPECT_EQ(s.time, "0-01:00:00");
  const int chain = static_cast<int>((600 * 60 + 3280 - 1) / 3280);
  EXPECT_EQ(s.max_requeues, 3 + chain - 1);
  EXPECT_NE(line_of(lines, "seed").find("a chain of " + std::to_string(chain) + " jobs"),
            std::string::npos)
      << line_of(lines, "seed");
  EXPECT_NE(line_of(lines, "seed").find("checkpoint saves took up to 100.0 s"), std::string::npos);
  // Kinds without an estimate keep the partition's default time and the floor.
  const size_t data = p.find("data") - p.jobs.data();
  EXPECT_EQ(p.jobs[data].slurm.time, "auto");
  EXPECT_EQ(p.jobs[data].slurm.signal_seconds, cluster::kSignalFloorS);
}

TEST(SlurmLimitsTest, UnderTheCapTheEstimateStandsAndATightMaxTimeCaps) {
  const Recipe r = load_recipe(kTiny, {"executor=slurm"});
  Plan p = make_plan(r);
  settle_slurm_limits(p, r.cost, nullptr, site());
  const size_t seed = p.find("seed") - p.jobs.data();
  EXPECT_EQ(p.jobs[seed].slurm.time, "0-00:10:00");  // the floor, below 1 h
  EXPECT_EQ(p.jobs[seed].slurm.max_requeues, 3);
  EXPECT_EQ(p.jobs[seed].slurm.signal_seconds, 120);
  Plan q = make_plan(load_recipe(kTiny, {"executor=slurm", "slurm.max_time=4"}));
  settle_slurm_limits(q, r.cost, nullptr, site());
  EXPECT_EQ(q.jobs[seed].slurm.time, "0-00:04:00");
  EXPECT_EQ(q.jobs[seed].slurm.signal_seconds, 120);  // half of 4 min
}

}  // namespace
}  // namespace upcycle::runner
