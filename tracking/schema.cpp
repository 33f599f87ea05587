#include "tracking/schema.h"

namespace upcycle::tracking {

// Tables are plural and snake_case; every table that jobs feed is keyed so that re-ingestion
// upserts.
static const char* kV1 = R"SQL(
CREATE TABLE experiments (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now'))
);
CREATE TABLE runs (
  id INTEGER PRIMARY KEY,
  experiment_id INTEGER NOT NULL REFERENCES experiments(id),
  key TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  sweep_point TEXT NOT NULL DEFAULT '{}',
  status TEXT NOT NULL DEFAULT 'pending',
  tags TEXT NOT NULL DEFAULT '',
  created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
  updated_at TEXT
);
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  stage TEXT NOT NULL,
  kind TEXT NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',
  attempts INTEGER NOT NULL DEFAULT 0,
  exit_code INTEGER,
  dir TEXT NOT NULL,
  host TEXT NOT NULL DEFAULT '',
  device TEXT NOT NULL DEFAULT '',
  scheduler_id TEXT NOT NULL DEFAULT '',
  error TEXT NOT NULL DEFAULT '',
  config TEXT NOT NULL DEFAULT '{}',
  started_at TEXT,
  finished_at TEXT,
  wall_s REAL
);
CREATE TABLE run_jobs (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  stage TEXT NOT NULL,
  PRIMARY KEY (run_id, stage)
);
CREATE TABLE params (
  run_id INTEGER NOT NULL REFERENCES runs(id),
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  PRIMARY KEY (run_id, key)
);
CREATE TABLE metrics (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  key TEXT NOT NULL,
  step INTEGER NOT NULL,
  value REAL,
  time REAL NOT NULL,
  PRIMARY KEY (job_id, key, step)
);
CREATE TABLE eval_results (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  model TEXT NOT NULL,
  task TEXT NOT NULL,
  metric TEXT NOT NULL,
  value REAL NOT NULL,
  stderr REAL,
  n INTEGER NOT NULL,
  PRIMARY KEY (job_id, model, task, metric)
);
CREATE TABLE artifacts (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  path TEXT NOT NULL,
  kind TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  bytes INTEGER NOT NULL,
  PRIMARY KEY (job_id, path)
);
CREATE TABLE provenance (
  run_id INTEGER PRIMARY KEY REFERENCES runs(id),
  git_sha TEXT NOT NULL,
  git_dirty INTEGER NOT NULL,
  recipe_hash TEXT NOT NULL,
  recipe_text TEXT NOT NULL,
  data_manifest_sha256 TEXT NOT NULL DEFAULT '',
  torch_version TEXT NOT NULL DEFAULT '',
  device TEXT NOT NULL DEFAULT '',
  host TEXT NOT NULL DEFAULT ''
);
CREATE INDEX metrics_by_key ON metrics(key);
CREATE INDEX eval_by_task ON eval_results(task, metric);

-- v_results: one row per (run, stage, model, task, metric). The view users query first.
CREATE VIEW v_results AS
  SELECT r.name AS run, e.name AS experiment, rj.stage AS stage, er.model, er.task, er.metric,
         er.value, er.stderr, er.n, j.key AS job_key, er.rowid AS result_id
  FROM eval_results er
  JOIN jobs j ON j.id = er.job_id
  JOIN run_jobs rj ON rj.job_id = j.id
  JOIN runs r ON r.id = rj.run_id
  JOIN experiments e ON e.id = r.experiment_id;

-- v_jobs: every job of every run with its status and timings.
CREATE VIEW v_jobs AS
  SELECT r.name AS run, rj.stage, j.kind, j.status, j.attempts, j.exit_code, j.wall_s, j.host,
         j.scheduler_id, j.key, j.dir, j.error
  FROM jobs j JOIN run_jobs rj ON rj.job_id = j.id JOIN runs r ON r.id = rj.run_id;

-- v_final_metrics: the last logged value of every metric of every job.
CREATE VIEW v_final_metrics AS
  SELECT r.name AS run, rj.stage, m.key, m.step, m.value
  FROM metrics m
  JOIN (SELECT job_id, key, MAX(step) AS step FROM metrics GROUP BY job_id, key) last
    ON last.job_id = m.job_id AND last.key = m.key AND last.step = m.step
  JOIN run_jobs rj ON rj.job_id = m.job_id
  JOIN runs r ON r.id = rj.run_id;
)SQL";

// v2: downstream results from lm-evaluation-harness are keyed by (task, metric, filter) and keep
// their few-shot count. SQLite cannot change a primary key in place: the table is rebuilt.
static const char* kV2 = R"SQL(
DROP VIEW v_results;
CREATE TABLE eval_results_v2 (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  model TEXT NOT NULL,
  task TEXT NOT NULL,
  metric TEXT NOT NULL,
  filter TEXT NOT NULL DEFAULT 'none',
  value REAL NOT NULL,
  stderr REAL,
  n INTEGER NOT NULL,
  n_shot INTEGER,
  PRIMARY KEY (job_id, model, task, metric, filter)
);
INSERT INTO eval_results_v2(job_id, model, task, metric, value, stderr, n)
  SELECT job_id, model, task, metric, value, stderr, n FROM eval_results;
DROP TABLE eval_results;
ALTER TABLE eval_results_v2 RENAME TO eval_results;
CREATE INDEX eval_by_task ON eval_results(task, metric);

-- v_results: one row per (run, stage, model, task, metric, filter). The view users query first.
CREATE VIEW v_results AS
  SELECT r.name AS run, e.name AS experiment, rj.stage AS stage, er.model, er.task, er.metric,
         er.filter, er.value, er.stderr, er.n, er.n_shot, j.key AS job_key, er.rowid AS result_id
  FROM eval_results er
  JOIN jobs j ON j.id = er.job_id
  JOIN run_jobs rj ON rj.job_id = j.id
  JOIN runs r ON r.id = rj.run_id
  JOIN experiments e ON e.id = r.experiment_id;
)SQL";

// v3: which code computed each job (git sha and dirty flag as built, and the binary's sha256), and
// the runner binary's sha256 beside each run's provenance; train jobs' shapes and throughput. Jobs'
// config now holds exactly what their content key hashes; rows of earlier versions keep their old
// config.
static const char* kV3 = R"SQL(
ALTER TABLE jobs ADD COLUMN git_sha TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN git_dirty INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN binary_sha256 TEXT NOT NULL DEFAULT '';
ALTER TABLE provenance ADD COLUMN binary_sha256 TEXT NOT NULL DEFAULT '';
-- the throughput history the cost model reads (runner/cost.h): a train job's shape (model, batch,
-- device kind, precision, ranks, threads) and the tokens per second it trained at
ALTER TABLE jobs ADD COLUMN shape TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN tokens_per_s REAL;
CREATE INDEX jobs_by_shape ON jobs(shape);
)SQL";

// v4: which runs may pool as seeds. seed_group is the sha256 of a run's resolved recipe without its
// seed and without the keys that only say where it ran; tables pool runs whose seed_group is equal
// ('' for runs registered before v4: the sweep point decides for them, as before).
static const char* kV4 = R"SQL(
ALTER TABLE runs ADD COLUMN seed_group TEXT NOT NULL DEFAULT '';
)SQL";

// v5: the job ledger (runner/ledger.h). One row per attempt of a job on either executor: a local
// process, or one Slurm job id and restart count (a row in 'submitting' is the intent written
// before sbatch). Times are unix seconds. jobs.status, attempts and wall_s follow from these rows.
// Train jobs also keep their slowest checkpoint save, from which `slurm.signal_seconds: auto`
// derives how long before a time limit to signal.
static const char* kV5 = R"SQL(
ALTER TABLE jobs ADD COLUMN checkpoint_save_s REAL;
CREATE TABLE job_attempts (
  id INTEGER PRIMARY KEY,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  scheduler_id TEXT NOT NULL DEFAULT '',
  restart INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL,
  reason TEXT NOT NULL DEFAULT '',
  host TEXT NOT NULL DEFAULT '',
  exit_code INTEGER,
  submitted_at REAL,
  started_at REAL,
  ended_at REAL,
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  UNIQUE (job_id, scheduler_id, restart)
);
-- v_attempts: every attempt of every job of every run, in order.
CREATE VIEW v_attempts AS
  SELECT r.name AS run, rj.stage, a.scheduler_id, a.restart, a.status, a.reason, a.host,
         a.exit_code, a.started_at, a.ended_at, a.ended_at - a.started_at AS wall_s, j.key
  FROM job_attempts a JOIN jobs j ON j.id = a.job_id JOIN run_jobs rj ON rj.job_id = j.id
  JOIN runs r ON r.id = rj.run_id;
)SQL";

// v6: each train job's realised data blend (stages/train/batch_sampler.h): per domain and file,
// the planned share of samples and how many samples it gave.
static const char* kV6 = R"SQL(
CREATE TABLE data_mix (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  domain TEXT NOT NULL,
  part TEXT NOT NULL,
  weight REAL NOT NULL,
  samples INTEGER NOT NULL,
  PRIMARY KEY (job_id, domain, part)
);
-- v_data_mix: the planned and realised share of each file in each run's train jobs.
CREATE VIEW v_data_mix AS
  SELECT r.name AS run, rj.stage, m.domain, m.part, m.weight, m.samples,
         CAST(m.samples AS REAL) / (SELECT SUM(samples) FROM data_mix t WHERE t.job_id = m.job_id)
           AS realised
  FROM data_mix m JOIN run_jobs rj ON rj.job_id = m.job_id JOIN runs r ON r.id = rj.run_id;
)SQL";

const std::vector<const char*>& schema_migrations() {
  static const std::vector<const char*> kMigrations = {kV1, kV2, kV3, kV4, kV5, kV6};
  return kMigrations;
}

}  // namespace upcycle::tracking
