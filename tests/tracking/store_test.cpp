#include "tracking/store.h"
#include "tracking/schema.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdio>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/metric_sink.h"
#include "tests/support/temp_dir.h"

namespace upcycle::tracking {
namespace {

int64_t count(Store& s, const std::string& table) {
  return std::get<int64_t>(s.select("SELECT COUNT(*) FROM " + table).rows[0][0]);
}

TEST(StoreTest, NewStoreIsMigratedToCurrentVersion) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  EXPECT_EQ(s.user_version(), Store::schema_version());
  EXPECT_GE(Store::schema_version(), 1);
  auto mode = s.select("PRAGMA journal_mode");
  EXPECT_EQ(std::get<std::string>(mode.rows[0][0]), "wal");
}

TEST(StoreTest, TwoProcessesCreatingOneStoreBothSucceed) {
  testing::TempDir dir;
  std::string path = dir / "store.sqlite";
  pid_t kids[2];
  for (int k = 0; k < 2; ++k) {
    kids[k] = ::fork();
    if (kids[k] == 0) {
      try {
        Store s(path);
        s.upsert_run({"key-" + std::to_string(k), "exp", "run" + std::to_string(k), "{}"});
        ::_exit(0);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "child %d: %s\n", k, e.what());  // shown with the failure
        ::_exit(1);
      }
    }
  }
  for (pid_t kid : kids) {
    int status = 0;
    ::waitpid(kid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  Store s(path);
  EXPECT_EQ(s.user_version(), Store::schema_version());
  EXPECT_EQ(count(s, "runs"), 2);
  EXPECT_EQ(count(s, "experiments"), 1);
}

// A store written by schema v1 (before filters and n-shot) opens as the current version and keeps
// its results.
TEST(StoreTest, MigratesAVersionOneStore) {
  testing::TempDir dir;
  const std::string path = dir / "v1.sqlite";
  {
    SQLite::Database db(path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE);
    db.exec(schema_migrations().at(0));
    db.exec("PRAGMA user_version = 1");
    db.exec("INSERT INTO jobs(key, stage, kind, dir) VALUES ('k', 'eval', 'eval', '/d')");
    db.exec(
        "INSERT INTO eval_results(job_id, model, task, metric, value, stderr, n) "
        "VALUES (1, 'seed', 'ppl/code', 'ppl', 12.5, NULL, 640)");
  }
  Store s(path);
  EXPECT_EQ(s.user_version(), Store::schema_version());
  auto rows = s.select("SELECT model, filter, value, n, n_shot FROM eval_results");
  ASSERT_EQ(rows.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(rows.rows[0][1]), "none");
  EXPECT_EQ(std::get<double>(rows.rows[0][2]), 12.5);
  // v3: which code computed each job; empty for jobs ingested before.
  auto code = s.select("SELECT git_sha, binary_sha256 FROM jobs");
  ASSERT_EQ(code.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(code.rows[0][1]), "");
  EXPECT_TRUE(std::holds_alternative<std::monostate>(rows.rows[0][4]));
  // The rebuilt view sees the new columns.
  EXPECT_EQ(s.select("SELECT filter, n_shot FROM v_results").columns.size(), 2u);
}

// The ledger's rows: an intent that gets its id, requeued attempts, the job's attempt count and
// wall time as the sum over attempts (never the last one alone), forgotten on a reset.
TEST(StoreTest, AttemptsSumTheirWallTimes) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  int64_t run = s.upsert_run({"rk", "exp", "run", "{}"});
  s.upsert_job(run, {0, "jk", "seed", "train", core::JobStatus::kPending, 0, std::nullopt,
                     dir / "job", "", "", "", "{}"});
  Attempt intent;
  intent.scheduler_id = "intent:jk#-1";
  intent.status = core::JobStatus::kSubmitting;
  intent.id = s.put_attempt("jk", intent);
  EXPECT_EQ(s.find_job("jk")->attempts, 0);
  Attempt first = s.attempts("jk").at(0);
  first.scheduler_id = "slurm:7";  // the id sbatch returned
  first.status = core::JobStatus::kPreempted;
  first.started_at = 1000;
  first.ended_at = 1010.5;
  first.exit_code = 75;
  EXPECT_EQ(s.put_attempt("jk", first), intent.id);
  Attempt second;
  second.scheduler_id = "slurm:7";
  second.restart = 1;
  second.status = core::JobStatus::kRunning;
  second.started_at = 1100;
  s.put_attempt("jk", second);
  EXPECT_EQ(s.find_job("jk")->attempts, 2);
  auto wall = [&] {
    return std::get<double>(s.select("SELECT wall_s FROM jobs WHERE key = 'jk'").rows[0][0]);
  };
  EXPECT_DOUBLE_EQ(wall(), 10.5);  // the open attempt does not count yet
  second.ended_at = 1120;
  second.status = core::JobStatus::kDone;
  s.put_attempt("jk", second);  // by (scheduler id, restart): the same row
  const auto all = s.attempts("jk");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].scheduler_id, "slurm:7");
  EXPECT_EQ(all[0].exit_code, 75);
  EXPECT_EQ(all[1].restart, 1);
  EXPECT_EQ(all[1].status, core::JobStatus::kDone);
  EXPECT_DOUBLE_EQ(wall(), 30.5);
  s.reset_job("jk");
  EXPECT_TRUE(s.attempts("jk").empty());
  EXPECT_EQ(s.find_job("jk")->attempts, 0);
}

TEST(StoreTest, IngestIsIdempotent) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  int64_t run = s.upsert_run({"rk", "exp", "run", "{}"});
  EXPECT_EQ(s.upsert_run({"rk", "exp", "run", "{}"}), run);
  std::string job_dir = dir / "job";
  core::make_dirs(job_dir);
  s.upsert_job(run, {0, "jk", "seed", "train", core::JobStatus::kPending, 0, std::nullopt, job_dir,
                     "", "", "", "{}"});
  core::JsonlMetricSink sink(job_dir + "/metrics.jsonl");
  sink.log(1, {{"loss", 5.0}, {"lr", 0.1}});
  sink.log(2, {{"loss", 4.0}, {"lr", 0.2}});
  core::JobResult r;
  r.key = "jk";
  r.evals = {{"seed", "ppl/code", "ppl", 10.0, 0.5, 100, "none", std::nullopt}};
  r.artifacts = {{job_dir + "/checkpoint", "checkpoint", "ab", 10}};
  for (int i = 0; i < 3; ++i) s.ingest_job("jk", job_dir, r);
  EXPECT_EQ(count(s, "metrics"), 4);
  EXPECT_EQ(count(s, "eval_results"), 1);
  EXPECT_EQ(count(s, "artifacts"), 1);
  auto job = s.find_job("jk");
  ASSERT_TRUE(job);
  EXPECT_EQ(job->status, core::JobStatus::kDone);
  auto v = s.select("SELECT run, model, task, value FROM v_results");
  ASSERT_EQ(v.rows.size(), 1u);
  EXPECT_DOUBLE_EQ(std::get<double>(v.rows[0][3]), 10.0);

  s.reset_job("jk");  // a forced re-run starts from nothing
  EXPECT_EQ(count(s, "metrics"), 0);
  EXPECT_EQ(count(s, "eval_results"), 0);
  EXPECT_EQ(s.find_job("jk")->status, core::JobStatus::kPending);
}

TEST(StoreTest, ValuesAreBoundNotSpliced) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  std::string evil = "x'); DROP TABLE runs; --";
  s.upsert_run({"k", evil, evil, "{}"});
  auto rs = s.select("SELECT name FROM runs WHERE name = ?", {evil});
  ASSERT_EQ(rs.rows.size(), 1u);
  EXPECT_EQ(std::get<std::string>(rs.rows[0][0]), evil);
}

TEST(StoreTest, ReadOnlyOpenOfMissingStoreThrowsStoreError) {
  testing::TempDir dir;
  EXPECT_THROW(Store(dir / "missing.sqlite", Store::Mode::kReadOnly), StoreError);
}

TEST(StoreTest, NewerSchemaIsRejected) {
  testing::TempDir dir;
  std::string path = dir / "store.sqlite";
  {
    Store s(path);
    s.select("PRAGMA user_version = 999");
  }
  try {
    Store s(path);
    FAIL() << "expected StoreError";
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace upcycle::tracking
