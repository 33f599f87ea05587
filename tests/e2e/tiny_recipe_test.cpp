// Runs the real binary on recipes/ci/tiny.yaml and checks what it leaves in the SQLite store.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/store_dump.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

int64_t scalar(tracking::Store& s, const std::string& sql,
               const std::vector<std::string>& binds = {}) {
  return std::get<int64_t>(s.select(sql, binds).rows.at(0).at(0));
}

size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(TinyRecipeTest, RunsEndToEndAndFillsTheStore) {
  testing::TempDir dir;
  const std::string recipe = UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml";
  auto r = run_binary({UPCYCLE_BINARY, "run", recipe}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  EXPECT_EQ(scalar(store, "SELECT COUNT(*) FROM runs WHERE name = 'tiny' AND status = 'done'"), 1);
  EXPECT_EQ(scalar(store, "SELECT COUNT(*) FROM jobs"),
            7);  // data, seed, 2 experts, bam, bam_dm, eval
  EXPECT_EQ(scalar(store, "SELECT COUNT(*) FROM jobs WHERE status = 'done'"), 7);
  EXPECT_GT(scalar(store, "SELECT COUNT(*) FROM params WHERE key = 'stages.bam.method'"), 0);
  EXPECT_EQ(scalar(store,
                   "SELECT COUNT(*) FROM provenance WHERE recipe_text LIKE '%bam_dm%' "
                   "AND torch_version != '' AND data_manifest_sha256 != ''"),
            1);

  // Training metrics of every training job, with a loss that went down.
  for (const char* stage : {"seed", "experts/code", "experts/math", "bam_dm"}) {
    EXPECT_GT(scalar(store,
                     "SELECT COUNT(*) FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id "
                     "WHERE rj.stage = ? AND m.key = 'loss'",
                     {stage}),
              1)
        << stage;
  }
  auto loss = store.select(
      "SELECT m.value FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id "
      "WHERE rj.stage = 'seed' AND m.key = 'loss' ORDER BY m.step");
  EXPECT_LT(std::get<double>(loss.rows.back()[0]), std::get<double>(loss.rows.front()[0]));
  EXPECT_GT(scalar(store, "SELECT COUNT(*) FROM metrics WHERE key LIKE 'util/l%/e%'"), 0);

  // Perplexity of every evaluated model on every domain, finite and better than uniform (vocab
  // 512).
  auto ppl =
      store.select("SELECT model, task, value, stderr, n FROM v_results WHERE metric = 'ppl'");
  std::set<std::string> models, tasks;
  for (const auto& row : ppl.rows) {
    models.insert(std::get<std::string>(row[0]));
    tasks.insert(std::get<std::string>(row[1]));
    double v = std::get<double>(row[2]);
    EXPECT_TRUE(std::isfinite(v) && v > 1.0 && v < 512.0) << v;
    EXPECT_GT(std::get<int64_t>(row[4]), 0);
  }
  EXPECT_EQ(models, (std::set<std::string>{"seed", "experts/code", "experts/math", "bam_dm"}));
  EXPECT_EQ(tasks, (std::set<std::string>{"ppl/general", "ppl/code", "ppl/law", "ppl/math"}));

  // Every bits-per-byte figure recomputes from the stored nats, tokens and bytes of its row:
  // bpb = nll * n / (bytes * ln 2), and a byte-level model of this text would have fewer tokens
  // than bytes.
  auto bpb = store.select(
      "SELECT b.value, l.value, l.n, y.value FROM v_results b "
      "JOIN v_results l ON l.model = b.model AND l.task = b.task AND l.metric = 'nll' "
      "JOIN v_results y ON y.model = b.model AND y.task = b.task AND y.metric = 'bytes' "
      "WHERE b.metric = 'bpb'");
  ASSERT_EQ(bpb.rows.size(), ppl.rows.size());
  for (const auto& row : bpb.rows) {
    const double nll = std::get<double>(row[1]), bytes = std::get<double>(row[3]);
    const auto tokens = std::get<int64_t>(row[2]);
    EXPECT_NEAR(std::get<double>(row[0]), nll * double(tokens) / (bytes * std::log(2.0)), 1e-12);
    EXPECT_GT(bytes, double(tokens));
  }
  auto bpb_table = run_binary(
      {UPCYCLE_BINARY, "table", "ppl", "--metric", "bpb", "--format", "csv"}, dir.path());
  EXPECT_EQ(bpb_table.exit_code, 0) << bpb_table.output;
  auto bad_metric = run_binary({UPCYCLE_BINARY, "table", "ppl", "--metric", "bits"}, dir.path());
  EXPECT_EQ(bad_metric.exit_code, 1);
  EXPECT_NE(bad_metric.output.find("bpb"), std::string::npos) << bad_metric.output;

  // Downstream scores from the built-in tasks: acc and acc_norm for continuations, exact match for
  // arithmetic, each with n and a stderr.
  for (const char* task : {"cont/general", "cont/code", "cont/law", "arith/math", "domain/general",
                           "domain/code", "domain/law", "domain/math"}) {
    EXPECT_GT(scalar(store,
                     "SELECT COUNT(*) FROM v_results WHERE task = ? AND model = 'bam_dm' AND n > 0 "
                     "AND stderr IS NOT NULL AND value BETWEEN 0 AND 1",
                     {task}),
              0)
        << task;
  }
  EXPECT_EQ(scalar(store, "SELECT COUNT(DISTINCT metric) FROM v_results WHERE task LIKE 'cont/%'"),
            2);
  auto down = run_binary({UPCYCLE_BINARY, "table", "downstream", "--format", "csv"}, dir.path());
  EXPECT_EQ(down.exit_code, 0) << down.output;
  EXPECT_NE(down.output.find("cont/code acc_norm"), std::string::npos) << down.output;

  // Running it again trains nothing and leaves every row of the store as it was.
  std::string before;
  {
    tracking::Store s(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
    before = testing::dump_store(s);
  }
  auto again = run_binary({UPCYCLE_BINARY, "run", recipe}, dir.path());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("0 jobs done, 7 already complete"), std::string::npos)
      << again.output;
  tracking::Store after(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  EXPECT_EQ(scalar(after, "SELECT MAX(attempts) FROM jobs"), 1);
  EXPECT_EQ(testing::dump_store(after), before);

  auto query =
      run_binary({UPCYCLE_BINARY, "query", "--where",
                  "model = 'bam_dm' AND task = 'ppl/code' AND (metric = ppl OR metric = nll)",
                  "--format", "csv"},
                 dir.path());
  EXPECT_EQ(query.exit_code, 0) << query.output;
  EXPECT_EQ(std::count(query.output.begin(), query.output.end(), '\n'), 3)
      << query.output;  // header + 2
  auto bad_query = run_binary({UPCYCLE_BINARY, "query", "--where", "modle = x"}, dir.path());
  EXPECT_EQ(bad_query.exit_code, 1);
  EXPECT_NE(bad_query.output.find("did you mean 'model'"), std::string::npos) << bad_query.output;

  auto table = run_binary({UPCYCLE_BINARY, "table", "ppl", "--format", "csv"}, dir.path());
  EXPECT_EQ(table.exit_code, 0) << table.output;
  EXPECT_EQ(table.output.substr(0, table.output.find('\n')),
            "model,general,general_std,code,code_std,law,law_std,math,math_std,avg,avg_std,n,"
            "change_vs_reference_pct,paper_change_vs_reference_pct,paper_row");

  // Every job traces to the code that computed it: git sha as built and the binary's sha256.
  EXPECT_EQ(
      scalar(after, "SELECT COUNT(*) FROM jobs WHERE length(binary_sha256) = 64 AND git_sha != ''"),
      7);
  EXPECT_EQ(scalar(after, "SELECT COUNT(*) FROM provenance WHERE length(binary_sha256) = 64"), 1);

  // `plan` says why each job will or will not run: complete, or what changed since its last run.
  auto plan =
      run_binary({UPCYCLE_BINARY, "plan", recipe, "stages.bam_dm.optim.lr=2e-3"}, dir.path());
  EXPECT_EQ(plan.exit_code, 0) << plan.output;
  EXPECT_EQ(occurrences(plan.output, "complete: skipped"), 5) << plan.output;
  EXPECT_NE(plan.output.find("will run: changed since its last run (optim.lr)"), std::string::npos)
      << plan.output;
  EXPECT_NE(plan.output.find("will run: changed since its last run (input bam_dm)"),
            std::string::npos)
      << plan.output;
}

TEST(TinyRecipeTest, SweepRunsEveryPointAndSharesEqualJobs) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "sweep.yaml",
                          "include: " UPCYCLE_SOURCE_DIR
                          "/recipes/ci/tiny.yaml\n"
                          "sweep:\n  stages.bam_dm.budget.tokens: [12k, 24k]\n");
  auto r = run_binary({UPCYCLE_BINARY, "run", dir / "sweep.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("run tiny/stages.bam_dm.budget.tokens=12k"), std::string::npos)
      << r.output;
  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  EXPECT_EQ(scalar(store, "SELECT COUNT(*) FROM runs WHERE status = 'done'"), 2);
  // data, seed, experts and bam once; bam_dm and eval per point.
  EXPECT_EQ(scalar(store, "SELECT COUNT(*) FROM jobs"), 5 + 2 * 2);
  EXPECT_EQ(scalar(store, "SELECT COUNT(DISTINCT run) FROM v_results WHERE model = 'bam_dm'"), 2);
  auto q =
      run_binary({UPCYCLE_BINARY, "query", "--where",
                  "params.stages.bam_dm.budget.tokens = 12k AND model = bam_dm AND metric = ppl",
                  "--format", "csv"},
                 dir.path());
  EXPECT_EQ(q.exit_code, 0) << q.output;
  EXPECT_EQ(std::count(q.output.begin(), q.output.end(), '\n'), 5)
      << q.output;  // header + 4 domains

  // compare: the two points side by side, and the one recipe key that differs.
  const std::string a = "tiny/stages.bam_dm.budget.tokens=12k",
                    b = "tiny/stages.bam_dm.budget.tokens=24k";
  auto cmp = run_binary({UPCYCLE_BINARY, "compare", a, b, "--where",
                         "model = bam_dm AND metric = ppl", "--params", "--format", "json"},
                        dir.path());
  ASSERT_EQ(cmp.exit_code, 0) << cmp.output;
  const auto doc = nlohmann::json::parse(cmp.output);  // one document: {results, params}
  const auto& results = doc.at("results");
  const auto& params = doc.at("params");
  ASSERT_EQ(results.size(), 4u) << cmp.output;  // one row per domain
  EXPECT_TRUE(results[0][a].is_number() && results[0][b].is_number());
  EXPECT_NE(results[0][a], results[0][b]);  // twice the continued training changes the perplexity
  ASSERT_EQ(params.size(), 1u) << cmp.output;
  EXPECT_EQ(params[0]["param"], "stages.bam_dm.budget.tokens");

  // tags: set on a run, visible to queries.
  auto tag = run_binary({UPCYCLE_BINARY, "tag", "--run", a, "short", "owner=ci"}, dir.path());
  ASSERT_EQ(tag.exit_code, 0) << tag.output;
  auto tagged = run_binary({UPCYCLE_BINARY, "query", "--where",
                            "tags LIKE '%owner=ci%' AND metric = ppl", "--format", "csv"},
                           dir.path());
  EXPECT_EQ(std::count(tagged.output.begin(), tagged.output.end(), '\n'), 1 + 4 * 4)
      << tagged.output;
}

}  // namespace
}  // namespace upcycle
