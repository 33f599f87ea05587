// The job ledger's rows (Store::put_attempt, Store::attempts): SQL here, decisions in
// runner/ledger.cpp.
#include "tracking/guarded.h"
#include "tracking/store.h"

namespace upcycle::tracking {
int64_t Store::write_attempt(const AttemptWrite& w) {
  const std::string& key = w.key;
  const Attempt& a = w.attempt;
  const int64_t job_id = job_id_of(*db_, path_, key, "attempt");
  SQLite::Statement st(
      *db_, a.id != 0
                ? "UPDATE job_attempts SET scheduler_id = ?2, restart = ?3, status = ?4, "
                  "reason = ?5, host = ?6, exit_code = ?7, submitted_at = ?8, started_at = ?9, "
                  "ended_at = ?10, cancel_requested = ?11 WHERE id = ?12 AND job_id = ?1"
                : "INSERT INTO job_attempts(job_id, scheduler_id, restart, status, reason, host, "
                  "exit_code, submitted_at, started_at, ended_at, cancel_requested) VALUES "
                  "(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT(job_id, "
                  "scheduler_id, restart) DO UPDATE SET status = excluded.status, reason = "
                  "excluded.reason, host = excluded.host, exit_code = excluded.exit_code, "
                  "submitted_at = excluded.submitted_at, started_at = excluded.started_at, "
                  "ended_at = excluded.ended_at, cancel_requested = excluded.cancel_requested");
  st.bind(1, job_id);
  st.bind(2, a.scheduler_id);
  st.bind(3, a.restart);
  st.bind(4, core::to_string(a.status));
  st.bind(5, a.reason);
  st.bind(6, a.host);
  bind_optional(st, 7, a.exit_code);
  bind_optional(st, 8, a.submitted_at);
  bind_optional(st, 9, a.started_at);
  bind_optional(st, 10, a.ended_at);
  st.bind(11, a.cancel_requested ? 1 : 0);
  if (a.id != 0) st.bind(12, a.id);
  st.exec();
  SQLite::Statement back(*db_,
                         "SELECT id FROM job_attempts WHERE job_id = ? AND scheduler_id = ? AND "
                         "restart = ?");
  back.bind(1, job_id);
  back.bind(2, a.scheduler_id);
  back.bind(3, a.restart);
  if (!back.executeStep()) throw StoreError(path_ + ": attempt " + a.scheduler_id + " vanished");
  const int64_t attempt_id = back.getColumn(0).getInt64();
  SQLite::Statement sum(
      *db_,
      "UPDATE jobs SET attempts = (SELECT COUNT(*) FROM job_attempts WHERE job_id = ?1 AND "
      "started_at IS NOT NULL), wall_s = COALESCE((SELECT SUM(ended_at - started_at) FROM "
      "job_attempts WHERE job_id = ?1 AND started_at IS NOT NULL AND ended_at IS NOT NULL), "
      "wall_s) WHERE id = ?1");
  sum.bind(1, job_id);
  sum.exec();
  if (w.job) write_job_status(*db_, key, *w.job);
  return attempt_id;
}

int64_t Store::put_attempt(const std::string& key, const Attempt& a,
                           const std::optional<JobStatusUpdate>& job) {
  return guarded(path_, db_.get(), "record an attempt of job " + key, [&] {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    const int64_t id = write_attempt({key, a, job});
    tx.commit();
    return id;
  });
}

void Store::put_attempts(const std::vector<AttemptWrite>& writes) {
  if (writes.empty()) return;
  guarded(path_, db_.get(), "record " + std::to_string(writes.size()) + " attempts", [&] {
    SQLite::Transaction tx(*db_, SQLite::TransactionBehavior::IMMEDIATE);
    for (const auto& w : writes) write_attempt(w);
    tx.commit();
  });
}

std::vector<Attempt> Store::attempts(const std::string& key) {
  return guarded(path_, db_.get(), "read the attempts of job " + key, [&] {
    SQLite::Statement q(*db_,
                        "SELECT a.id, a.scheduler_id, a.restart, a.status, a.reason, a.host, "
                        "a.exit_code, a.submitted_at, a.started_at, a.ended_at, "
                        "a.cancel_requested FROM job_attempts a JOIN jobs j ON j.id = a.job_id "
                        "WHERE j.key = ? ORDER BY a.id");
    q.bind(1, key);
    std::vector<Attempt> out;
    auto opt = [&](int c) -> std::optional<double> {
      if (q.getColumn(c).isNull()) return std::nullopt;
      return q.getColumn(c).getDouble();
    };
    while (q.executeStep()) {
      Attempt a;
      a.id = q.getColumn(0).getInt64();
      a.scheduler_id = q.getColumn(1).getString();
      a.restart = q.getColumn(2).getInt();
      a.status =
          core::parse_job_status(q.getColumn(3).getString()).value_or(core::JobStatus::kFailed);
      a.reason = q.getColumn(4).getString();
      a.host = q.getColumn(5).getString();
      if (!q.getColumn(6).isNull()) a.exit_code = q.getColumn(6).getInt();
      a.submitted_at = opt(7);
      a.started_at = opt(8);
      a.ended_at = opt(9);
      a.cancel_requested = q.getColumn(10).getInt() != 0;
      out.push_back(std::move(a));
    }
    return out;
  });
}

}  // namespace upcycle::tracking
