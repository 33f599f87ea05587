// The SQLite experiment store (SQLiteCpp). One writer: the runner on the submit host opens it
// read-write and ingests job directories; jobs never open it. Readers (query, table) open read-only
// and never block the writer (WAL). The schema is versioned with PRAGMA user_version
// (tracking/schema.cpp).
#pragma once

#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/job_files.h"
#include "core/job_status.h"

namespace SQLite {
class Database;
}

namespace upcycle::tracking {

using Cell = std::variant<std::monostate, int64_t, double, std::string>;

/// A cell's text, or "" when it is not text (NULL or a number).
inline std::string text_of(const Cell& c) {
  return std::holds_alternative<std::string>(c) ? std::get<std::string>(c) : "";
}
/// A numeric cell as a double (SQLite hands back 0 for 0.0 as an integer); NaN for NULL or text.
inline double number_of(const Cell& c) {
  if (auto* d = std::get_if<double>(&c)) return *d;
  if (auto* i = std::get_if<int64_t>(&c)) return static_cast<double>(*i);
  return std::numeric_limits<double>::quiet_NaN();
}

/// A query result: column names and rows of typed cells (NULL = monostate).
struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<Cell>> rows;
};

/// What identifies a run: a recipe resolved with one sweep point. `key` = hash of the resolved
/// recipe.
struct RunInfo {
  std::string key;
  std::string experiment;  ///< recipe name
  std::string name;        ///< e.g. "tiny" or "tiny/seed=2"
  std::string sweep_point_json = "{}";
  std::string seed_group;  ///< runs with equal seed_group differ only in the seed (schema v4)
};

struct Provenance {
  std::string git_sha;
  bool git_dirty = false;
  std::string recipe_hash;
  std::string recipe_text;  ///< the fully resolved recipe
  std::string data_manifest_sha256;
  std::string torch_version;
  std::string device;
  std::string host;
  std::string binary_sha256;  ///< of the runner's binary (core/provenance.h)
};

/// A job row. `key` is the content key; a job is shared by every run whose plan contains that key.
struct JobRow {
  int64_t id = 0;
  std::string key;
  std::string stage;  ///< stage label of the run that first planned it, e.g. "experiments/code"
  std::string kind;   ///< prepare | train | upcycle | eval | command
  core::JobStatus status = core::JobStatus::kPending;
  int attempts = 0;
  std::optional<int> exit_code;
  std::string dir;
  std::string host;
  std::string scheduler_id;
  std::string error;
  std::string config_json;  ///< what the job's key hashes: {kind, version, spec, inputs}
  std::string shape;        ///< train jobs: what their throughput depends on (runner/cost.h)
};

/// One attempt of a job (the ledger's row, runner/ledger.h): a local process, or one Slurm job id
/// and restart count. Times are unix seconds.
struct Attempt {
  int64_t id = 0;            ///< 0: not yet stored
  std::string scheduler_id;  ///< "pid:123", "slurm:45", "slurm:45_2"; "" for an intent
  int restart = 0;           ///< Slurm's restart count
  core::JobStatus status = core::JobStatus::kPending;
  std::string reason;  ///< why it ended, or (queued) why it waits
  std::string host;
  std::optional<int> exit_code;
  std::optional<double> submitted_at, started_at, ended_at;
  bool cancel_requested = false;
};

/// A job's status, and what goes with it: the exit code (when known), why it failed or waits, the
/// scheduler id (kept when empty).
struct JobStatusUpdate {
  core::JobStatus status = core::JobStatus::kPending;
  std::optional<int> exit_code;
  std::string error;
  std::string scheduler_id;
};

/// Open a store. Thread-compatible, not thread-safe: one Store per thread.
class Store {
 public:
  enum class Mode { kReadWrite, kReadOnly };
  /// Opens or creates `path` and migrates it to the current schema (read-write), or opens an
  /// existing store read-only. Throws StoreError naming the path and the reason.
  explicit Store(const std::string& path, Mode mode = Mode::kReadWrite);
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  static int schema_version();
  int user_version();
  const std::string& path() const { return path_; }

  /// Inserts or updates a run by key; returns its id.
  int64_t upsert_run(const RunInfo& run);
  /// Sets a run's status; an unchanged status writes nothing (a no-op re-run leaves the store as
  /// is).
  void set_run_status(int64_t run_id, const std::string& status);
  /// Replaces the tags ("a,b,k=v") of the run named `run_name`; throws StoreError when none is.
  void set_run_tags(const std::string& run_name, const std::string& tags);
  void record_provenance(int64_t run_id, const Provenance& p);
  /// Replaces the run's flattened resolved config.
  void record_params(int64_t run_id, const std::map<std::string, std::string>& params);

  /// Inserts a job by key if new (status pending) and links it to the run under `stage`; returns
  /// id.
  int64_t upsert_job(int64_t run_id, const JobRow& job);
  std::optional<JobRow> find_job(const std::string& key);
  /// Updates status fields of the job `key`. started/finished are set when status moves there.
  void set_job_status(const std::string& key, core::JobStatus status,
                      std::optional<int> exit_code = std::nullopt, const std::string& error = "",
                      const std::string& scheduler_id = "");

  /// Writes attempt `a` of job `key`: by `a.id` when set (its scheduler id may change: an intent
  /// that got one), else inserted or replaced by (scheduler id, restart). Then the job's attempt
  /// count (attempts that started) and wall time (the sum of those that ended, where any has)
  /// follow from its attempts. Returns the attempt's id.
  /// With `job`, the job's status is set in the same transaction.
  int64_t put_attempt(const std::string& key, const Attempt& a,
                      const std::optional<JobStatusUpdate>& job = std::nullopt);
  struct AttemptWrite {
    std::string key;
    Attempt attempt;
    std::optional<JobStatusUpdate> job;
  };
  /// put_attempt for each, all in one transaction.
  void put_attempts(const std::vector<AttemptWrite>& writes);
  /// The job's attempts in the order they were recorded.
  std::vector<Attempt> attempts(const std::string& key);

  /// Forgets what a job produced (metrics, evals, artifacts) and marks it pending: before a forced
  /// re-run or a retry, so stale rows of an earlier attempt cannot mix with the new ones.
  void reset_job(const std::string& key);

  /// Ingests a finished job directory: metrics.jsonl, the result's evals and artifacts, timings.
  /// Idempotent: re-ingesting the same directory changes nothing. One transaction.
  void ingest_job(const std::string& key, const std::string& dir, const core::JobResult& result);

  /// Runs a read query with bound parameters (never spliced).
  ResultSet select(const std::string& sql, const std::vector<std::string>& binds = {});

 private:
  void open(Mode mode);  ///< one attempt at connecting, configuring and migrating
  static void write_job_status(SQLite::Database& db, const std::string& key,
                               const JobStatusUpdate& u);
  int64_t write_attempt(const AttemptWrite& w);  ///< inside a transaction
  void migrate();
  void check_version(int found) const;
  std::string path_;
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace upcycle::tracking
