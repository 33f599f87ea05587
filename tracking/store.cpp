#include "tracking/store.h"

#include <cstdlib>
#include <cstring>

#include <SQLiteCpp/SQLiteCpp.h>

#include <sqlite3.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/log.h"
#include "tracking/guarded.h"
#include "tracking/metrics_ingest.h"
#include "tracking/schema.h"

namespace upcycle::tracking {
namespace {

constexpr int kBusyTimeoutMs = 30000;

Cell read_cell(const SQLite::Column& c) {
  if (c.isNull()) return std::monostate{};
  if (c.isInteger()) return c.getInt64();
  if (c.isFloat()) return c.getDouble();
  return c.getString();
}

}  // namespace

Store::Store(const std::string& path, Mode mode) : path_(path) {
  // Switching a new database to WAL, or reading it while another process does, can report "database
  // is locked" without waiting on the busy handler (SQLite does not invoke it on that path). Two
  // processes creating one store hit this, so the open sequence retries on BUSY/LOCKED until the
  // same deadline the busy timeout gives every other statement.
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(kBusyTimeoutMs);
  for (int attempt = 0;; ++attempt) {
    try {
      open(mode);
      return;
    } catch (const SQLite::Exception& e) {
      bool busy = e.getErrorCode() == SQLITE_BUSY || e.getErrorCode() == SQLITE_LOCKED;
      if (!busy || std::chrono::steady_clock::now() > deadline) {
        throw StoreError(path_ + ": open: " + sqlite_reason(e, db_.get()));
      }
      db_.reset();
      std::this_thread::sleep_for(std::chrono::milliseconds(5 + 5 * std::min(attempt, 20)));
    }
  }
}

void Store::open(Mode mode) {
  if (mode == Mode::kReadOnly) {
    db_ = std::make_unique<SQLite::Database>(path_, SQLite::OPEN_READONLY, kBusyTimeoutMs);
    check_version(db_->execAndGet("PRAGMA user_version").getInt());
    return;
  }
  db_ = std::make_unique<SQLite::Database>(path_, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE,
                                           kBusyTimeoutMs);
  db_->exec("PRAGMA journal_mode=WAL");
  db_->exec("PRAGMA synchronous=NORMAL");
  db_->exec("PRAGMA foreign_keys=ON");
  migrate();
}

Store::~Store() = default;

// Readers and writers alike refuse a store a newer upcycle wrote: its tables may mean other things.
void Store::check_version(int found) const {
  const int known = static_cast<int>(schema_migrations().size());
  if (found > known) {
    throw StoreError(path_ + ": schema version " + std::to_string(found) +
                         " is newer than this upcycle's (" + std::to_string(known) + ")",
                     "use a newer upcycle binary, or another store path");
  }
}

int Store::schema_version() { return static_cast<int>(schema_migrations().size()); }

int Store::user_version() {
  return guarded(path_, db_.get(), "read schema version",
                 [&] { return db_->execAndGet("PRAGMA user_version").getInt(); });
}

// BEGIN IMMEDIATE takes the write lock before user_version is read, so two processes creating the
// same new store cannot both apply migration 1: the second waits (busy_timeout), then sees the new
// version.
void Store::migrate() {
  SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
  int current = db_->execAndGet("PRAGMA user_version").getInt();
  const auto& migrations = schema_migrations();
  check_version(current);
  for (size_t v = static_cast<size_t>(current); v < migrations.size(); ++v) {
    db_->exec(migrations[v]);
    db_->exec("PRAGMA user_version = " + std::to_string(v + 1));
  }
  tx.commit();
}

int64_t Store::upsert_run(const RunInfo& run) {
  return guarded(path_, db_.get(), "upsert run " + run.name, [&] {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement exp(*db_,
                          "INSERT INTO experiments(name) VALUES (?) ON CONFLICT(name) DO NOTHING");
    exp.bind(1, run.experiment);
    exp.exec();
    SQLite::Statement ins(
        *db_,
        "INSERT INTO runs(experiment_id, key, name, sweep_point, seed_group) "
        "VALUES ((SELECT id FROM experiments WHERE name = ?), ?, ?, ?, ?) "
        "ON CONFLICT(key) DO UPDATE SET name = excluded.name, seed_group = excluded.seed_group, "
        "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') "
        "WHERE name != excluded.name OR seed_group != excluded.seed_group");
    ins.bind(1, run.experiment);
    ins.bind(2, run.key);
    ins.bind(3, run.name);
    ins.bind(4, run.sweep_point_json);
    ins.bind(5, run.seed_group);
    ins.exec();
    SQLite::Statement id(*db_, "SELECT id FROM runs WHERE key = ?");
    id.bind(1, run.key);
    id.executeStep();
    int64_t run_id = id.getColumn(0).getInt64();
    tx.commit();
    return run_id;
  });
}

void Store::set_run_status(int64_t run_id, const std::string& status) {
  guarded(path_, db_.get(), "set run status", [&] {
    SQLite::Statement st(*db_,
                         "UPDATE runs SET status = ?1, "
                         "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') "
                         "WHERE id = ?2 AND status != ?1");  // unchanged: no write at all
    st.bind(1, status);
    st.bind(2, run_id);
    st.exec();
  });
}

void Store::set_run_tags(const std::string& run_name, const std::string& tags) {
  guarded(path_, db_.get(), "set tags of run " + run_name, [&] {
    SQLite::Statement st(*db_,
                         "UPDATE runs SET tags = ?, "
                         "updated_at = strftime('%Y-%m-%dT%H:%M:%fZ','now') WHERE name = ?");
    st.bind(1, tags);
    st.bind(2, run_name);
    if (st.exec() == 0) throw StoreError(path_ + ": no run named '" + run_name + "'");
  });
}

void Store::record_provenance(int64_t run_id, const Provenance& p) {
  guarded(path_, db_.get(), "record provenance", [&] {
    SQLite::Statement st(
        *db_,
        "INSERT OR REPLACE INTO provenance(run_id, git_sha, git_dirty, recipe_hash, recipe_text, "
        "data_manifest_sha256, torch_version, device, host, binary_sha256) VALUES "
        "(?,?,?,?,?,?,?,?,?,?)");
    st.bind(1, run_id);
    st.bind(2, p.git_sha);
    st.bind(3, p.git_dirty ? 1 : 0);
    st.bind(4, p.recipe_hash);
    st.bind(5, p.recipe_text);
    st.bind(6, p.data_manifest_sha256);
    st.bind(7, p.torch_version);
    st.bind(8, p.device);
    st.bind(9, p.host);
    st.bind(10, p.binary_sha256);
    st.exec();
  });
}

void Store::record_params(int64_t run_id, const std::map<std::string, std::string>& params) {
  guarded(path_, db_.get(), "record params", [&] {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement del(*db_, "DELETE FROM params WHERE run_id = ?");
    del.bind(1, run_id);
    del.exec();
    SQLite::Statement ins(*db_, "INSERT INTO params(run_id, key, value) VALUES (?,?,?)");
    for (const auto& [k, v] : params) {
      ins.bind(1, run_id);
      ins.bind(2, k);
      ins.bind(3, v);
      ins.exec();
      ins.reset();
    }
    tx.commit();
  });
}

int64_t Store::upsert_job(int64_t run_id, const JobRow& job) {
  return guarded(path_, db_.get(), "upsert job " + job.stage, [&] {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    SQLite::Statement ins(
        *db_,
        "INSERT INTO jobs(key, stage, kind, dir, config, shape) VALUES (?,?,?,?,?,?) "
        "ON CONFLICT(key) DO NOTHING");
    ins.bind(1, job.key);
    ins.bind(2, job.stage);
    ins.bind(3, job.kind);
    ins.bind(4, job.dir);
    ins.bind(5, job.config_json);
    ins.bind(6, job.shape);
    ins.exec();
    const int64_t job_id = job_id_of(*db_, path_, job.key, "link");
    SQLite::Statement link(*db_,
                           "INSERT INTO run_jobs(run_id, job_id, stage) VALUES (?,?,?) "
                           "ON CONFLICT(run_id, stage) DO UPDATE SET job_id = excluded.job_id");
    link.bind(1, run_id);
    link.bind(2, job_id);
    link.bind(3, job.stage);
    link.exec();
    tx.commit();
    return job_id;
  });
}

std::optional<JobRow> Store::find_job(const std::string& key) {
  return guarded(path_, db_.get(), "find job", [&]() -> std::optional<JobRow> {
    SQLite::Statement q(
        *db_,
        "SELECT id, key, stage, kind, status, attempts, exit_code, dir, host, scheduler_id, error, "
        "config FROM jobs WHERE key = ?");
    q.bind(1, key);
    if (!q.executeStep()) return std::nullopt;
    JobRow r;
    r.id = q.getColumn(0).getInt64();
    r.key = q.getColumn(1).getString();
    r.stage = q.getColumn(2).getString();
    r.kind = q.getColumn(3).getString();
    r.status =
        core::parse_job_status(q.getColumn(4).getString()).value_or(core::JobStatus::kFailed);
    r.attempts = q.getColumn(5).getInt();
    if (!q.getColumn(6).isNull()) r.exit_code = q.getColumn(6).getInt();
    r.dir = q.getColumn(7).getString();
    r.host = q.getColumn(8).getString();
    r.scheduler_id = q.getColumn(9).getString();
    r.error = q.getColumn(10).getString();
    r.config_json = q.getColumn(11).getString();
    return r;
  });
}

void Store::write_job_status(SQLite::Database& db, const std::string& key,
                             const JobStatusUpdate& u) {
  std::string sql = "UPDATE jobs SET status = ?, error = ?";
  if (u.status == core::JobStatus::kRunning) {
    sql += ", started_at = COALESCE(started_at, strftime('%Y-%m-%dT%H:%M:%fZ','now'))";
  } else if (!core::is_active(u.status)) {
    sql += ", finished_at = strftime('%Y-%m-%dT%H:%M:%fZ','now')";
  }
  if (u.exit_code) sql += ", exit_code = " + std::to_string(*u.exit_code);  // an int, not user text
  if (!u.scheduler_id.empty()) sql += ", scheduler_id = ?3";
  sql += " WHERE key = ?4";
  SQLite::Statement st(db, sql);
  st.bind(1, core::to_string(u.status));
  st.bind(2, u.error);
  if (!u.scheduler_id.empty()) st.bind(3, u.scheduler_id);
  st.bind(4, key);
  st.exec();
}

void Store::set_job_status(const std::string& key, core::JobStatus status,
                           std::optional<int> exit_code, const std::string& error,
                           const std::string& scheduler_id) {
  guarded(path_, db_.get(), "set job status", [&] {
    write_job_status(*db_, key, {status, exit_code, error, scheduler_id});
  });
}

void Store::reset_job(const std::string& key) {
  guarded(path_, db_.get(), "reset job " + key, [&] {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    for (const char* table : {"metrics", "eval_results", "artifacts", "job_attempts"}) {
      SQLite::Statement del(*db_, std::string("DELETE FROM ") + table +
                                      " WHERE job_id = (SELECT id FROM jobs WHERE key = ?)");
      del.bind(1, key);
      del.exec();
    }
    SQLite::Statement st(
        *db_,
        "UPDATE jobs SET status = 'pending', wall_s = NULL, attempts = 0, started_at = NULL, "
        "finished_at = NULL WHERE key = ?");
    st.bind(1, key);
    st.exec();
    tx.commit();
  });
}

void Store::ingest_job(const std::string& key, const std::string& dir,
                       const core::JobResult& result) {
  // Parse outside the transaction so the write lock is held only for the inserts.
  std::vector<MetricPoint> points = read_metrics_jsonl(dir + "/" + core::kMetricsFile);
  guarded(path_, db_.get(), "ingest job " + dir, [&] {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    const int64_t job_id = job_id_of(*db_, path_, key, "ingest");

    SQLite::Statement m(*db_,
                        "INSERT INTO metrics(job_id, key, step, value, time) VALUES (?,?,?,?,?) "
                        "ON CONFLICT(job_id, key, step) DO UPDATE SET value = excluded.value, time "
                        "= excluded.time");
    for (const auto& p : points) {
      m.bind(1, job_id);
      m.bind(2, p.key);
      m.bind(3, p.step);
      bind_optional(m, 4, p.value);
      m.bind(5, p.time);
      m.exec();
      m.reset();
    }
    SQLite::Statement e(
        *db_,
        "INSERT INTO eval_results(job_id, model, task, metric, filter, value, stderr, n, n_shot) "
        "VALUES (?,?,?,?,?,?,?,?,?) "
        "ON CONFLICT(job_id, model, task, metric, filter) DO UPDATE SET value = excluded.value, "
        "stderr = excluded.stderr, n = excluded.n, n_shot = excluded.n_shot");
    for (const auto& r : result.evals) {
      e.bind(1, job_id);
      e.bind(2, r.model);
      e.bind(3, r.task);
      e.bind(4, r.metric);
      e.bind(5, r.filter);
      e.bind(6, r.value);
      bind_optional(e, 7, r.stderr_value);
      e.bind(8, r.n);
      bind_optional(e, 9, r.n_shot);
      e.exec();
      e.reset();
    }
    SQLite::Statement a(
        *db_,
        "INSERT INTO artifacts(job_id, path, kind, sha256, bytes) VALUES (?,?,?,?,?) "
        "ON CONFLICT(job_id, path) DO UPDATE SET kind = excluded.kind, sha256 = excluded.sha256, "
        "bytes = excluded.bytes");
    for (const auto& r : result.artifacts) {
      a.bind(1, job_id);
      a.bind(2, r.path);
      a.bind(3, r.kind);
      a.bind(4, r.sha256);
      a.bind(5, r.bytes);
      a.exec();
      a.reset();
    }
    SQLite::Statement mix(*db_,
                          "INSERT INTO data_mix(job_id, domain, part, weight, samples) VALUES "
                          "(?,?,?,?,?) ON CONFLICT(job_id, domain, part) DO UPDATE SET weight = "
                          "excluded.weight, samples = excluded.samples");
    for (const auto& r : result.mix) {
      mix.bind(1, job_id);
      mix.bind(2, r.domain);
      mix.bind(3, r.part);
      mix.bind(4, r.weight);
      mix.bind(5, r.samples);
      mix.exec();
      mix.reset();
    }
    SQLite::Statement j(
        *db_,
        "UPDATE jobs SET status = 'done', wall_s = ?, host = ?, device = ?, error = '', git_sha = "
        "?, "
        "git_dirty = ?, binary_sha256 = ?, tokens_per_s = ?, checkpoint_save_s = ?, "
        "finished_at = COALESCE(finished_at, strftime('%Y-%m-%dT%H:%M:%fZ','now')) WHERE id = ?");
    j.bind(1, result.wall_s);
    j.bind(2, result.host);
    j.bind(3, result.device);
    j.bind(4, result.code.git_sha);
    j.bind(5, result.code.git_dirty ? 1 : 0);
    j.bind(6, result.code.binary_sha256);
    // Measurements a job reports among its outputs, NULL when absent or not positive.
    bind_optional(j, 7, core::positive_output(result, "tokens_per_s"));
    bind_optional(j, 8, core::positive_output(result, "checkpoint_save_s"));
    j.bind(9, job_id);
    j.exec();
    tx.commit();
  });
}

ResultSet Store::select(const std::string& sql, const std::vector<std::string>& binds) {
  return guarded(path_, db_.get(), "query", [&] {
    SQLite::Statement q(*db_, sql);
    for (size_t i = 0; i < binds.size(); ++i) q.bind(static_cast<int>(i + 1), binds[i]);
    ResultSet rs;
    for (int c = 0; c < q.getColumnCount(); ++c) rs.columns.push_back(q.getColumnName(c));
    while (q.executeStep()) {
      std::vector<Cell> row;
      for (int c = 0; c < q.getColumnCount(); ++c) row.push_back(read_cell(q.getColumn(c)));
      rs.rows.push_back(std::move(row));
    }
    return rs;
  });
}

}  // namespace upcycle::tracking
