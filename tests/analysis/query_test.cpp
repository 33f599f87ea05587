// The --where language against a real store: semantics, binding, and errors with a column.
#include "analysis/query.h"

#include <gtest/gtest.h>

#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/metric_sink.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle::analysis {
namespace {

// Two runs (seed 1 and 2), each with models seed and bam_dm evaluated on code and math; bam_dm's
// training job logged tokens = 1000 * seed.
class QueryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    store_ = std::make_unique<tracking::Store>(dir_ / "store.sqlite");
    for (int seed : {1, 2}) {
      std::string run = "r" + std::to_string(seed);
      int64_t id = store_->upsert_run({run, "exp", run, "{}"});
      store_->record_params(id, {{"seed", std::to_string(seed)}, {"stages.bam.method", "bam"}});
      std::string train_dir = dir_ / (run + "-train"), eval_dir = dir_ / (run + "-eval");
      core::make_dirs(train_dir);
      core::make_dirs(eval_dir);
      store_->upsert_job(id, {0, run + "t", "bam_dm", "train", core::JobStatus::kPending, 0,
                              std::nullopt, train_dir, "", "", "", "{}"});
      core::JsonlMetricSink(train_dir + "/metrics.jsonl").log(5, {{"tokens", 1000.0 * seed}});
      store_->ingest_job(run + "t", train_dir, core::JobResult{});
      store_->upsert_job(id, {0, run + "e", "eval", "eval", core::JobStatus::kPending, 0,
                              std::nullopt, eval_dir, "", "", "", "{}"});
      core::JobResult r;
      for (const char* model : {"seed", "bam_dm"}) {
        for (const char* d : {"code", "math"}) {
          r.evals.push_back({model, std::string("ppl/") + d, "ppl", 10.0 * seed + (d[0] == 'c'),
                             0.1, 64, "none", std::nullopt});
        }
      }
      store_->ingest_job(run + "e", eval_dir, r);
    }
  }

  std::set<std::string> rows(const std::string& where, const std::string& run = "") {
    auto q = compile_query(where, run);
    auto rs = store_->select(q.sql, q.binds);
    std::set<std::string> out;
    for (const auto& row : rs.rows) {
      out.insert(std::get<std::string>(row[0]) + ":" + std::get<std::string>(row[2]) + ":" +
                 std::get<std::string>(row[3]));
    }
    return out;
  }

  testing::TempDir dir_;
  std::unique_ptr<tracking::Store> store_;
};

TEST_F(QueryTest, EmptyWhereSelectsEverything) { EXPECT_EQ(rows("").size(), 8u); }

TEST_F(QueryTest, OrAndParenthesesAndNot) {
  EXPECT_EQ(
      rows("model = 'bam_dm' AND (task = 'ppl/code' OR value < 15)"),
      (std::set<std::string>{"r1:bam_dm:ppl/code", "r1:bam_dm:ppl/math", "r2:bam_dm:ppl/code"}));
  EXPECT_EQ(rows("NOT model = seed AND run = r2 AND task LIKE '%math'"),
            (std::set<std::string>{"r2:bam_dm:ppl/math"}));
}

// Found by the fuzzers: one pair of parentheses per operator overflowed SQLite's parser stack on a
// long chain. Chains are flat now, and the deepest nesting the language allows runs in SQLite.
TEST_F(QueryTest, LongChainsAndTheDeepestNestingRunInSqlite) {
  std::string chain = "value > 0";
  for (int i = 0; i < 500; ++i) chain += (i % 2 ? " AND value > 0" : " OR value > 0");
  EXPECT_EQ(rows(chain).size(), 8u);
  std::string deep = "value > 0";  // 4 x 5 levels (parentheses and NOTs) + 1
  for (int i = 0; i < 4; ++i) deep = "(model != x AND NOT (NOT (" + deep + " OR value < 0)))";
  EXPECT_EQ(rows(deep).size(), 8u);
  std::string parens = "value > 0";  // 23 parentheses, each around a chain: 24 levels, the limit
  for (int i = 0; i < 23; ++i) parens = "(model != x AND " + parens + ")";
  EXPECT_EQ(rows(parens).size(), 8u);
  EXPECT_THROW(rows("(" + parens + ")"), ConfigError);
  std::string nots;
  for (int i = 0; i < 63; ++i) nots += "NOT ";
  EXPECT_EQ(rows(nots + "model = seed"), rows("model != seed"));  // the parity of a chain of NOTs
}

TEST_F(QueryTest, ParamsCompareNumericallyAndWithIn) {
  EXPECT_EQ(rows("params.seed >= 2 AND model = seed").size(), 2u);
  EXPECT_EQ(rows("params.seed IN (1, 3) AND model = seed").size(), 2u);
  EXPECT_EQ(rows("params.seed NOT IN (1) AND task = 'ppl/code' AND model = seed"),
            (std::set<std::string>{"r2:seed:ppl/code"}));
  EXPECT_EQ(rows("params.stages.bam.method = bam").size(), 8u);
}

TEST_F(QueryTest, MetricsOfTheJobThatTrainedTheModel) {
  EXPECT_EQ(rows("metrics.tokens > 1500"),
            (std::set<std::string>{"r2:bam_dm:ppl/code", "r2:bam_dm:ppl/math"}));
  EXPECT_TRUE(
      rows("metrics.tokens > 1500 AND model = seed").empty());  // seed has no training job here
}

TEST_F(QueryTest, RunRestrictionAndValuesThatLookLikeSql) {
  EXPECT_EQ(rows("", "r1").size(), 4u);
  EXPECT_TRUE(rows("model = \"x' OR '1'='1\"").empty());
  EXPECT_EQ(rows("run = r1").size(), 4u);  // the runs table survived
}

TEST_F(QueryTest, ErrorsNameTheColumn) {
  auto message = [](const std::string& where) {
    try {
      compile_query(where);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(message("value > 3 AND modle = x"),
            "--where: column 15: unknown field 'modle'; did you mean 'model'?");
  EXPECT_NE(message("(model = x").find("column 11: expected ')'"), std::string::npos);
  EXPECT_NE(message("model ~ x").find("column 7"), std::string::npos);
  EXPECT_NE(message("model = 'x").find("unterminated string"), std::string::npos);
  EXPECT_NE(message("model = x y").find("unexpected 'y'"), std::string::npos);
}

}  // namespace
}  // namespace upcycle::analysis
