#include "runner/ledger.h"

#include <chrono>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/host.h"
#include "core/job_files.h"
#include "runner/run_support.h"

namespace upcycle::runner {
namespace {

using core::JobStatus;
using tracking::Attempt;
using tracking::text_of;

constexpr const char* kSlurm = "slurm:";
constexpr const char* kIntent = "intent:";

// The last attempt that has not ended, if any.
Attempt* open_attempt(std::vector<Attempt>& attempts) {
  for (auto it = attempts.rbegin(); it != attempts.rend(); ++it) {
    if (!it->ended_at) return &*it;
  }
  return nullptr;
}

Attempt& attempt_of(std::vector<Attempt>& attempts, const std::string& sid, int restart) {
  for (auto& a : attempts) {
    if (a.scheduler_id == sid && a.restart == restart) return a;
  }
  Attempt a;
  a.scheduler_id = sid;
  a.restart = restart;
  a.status = JobStatus::kQueued;
  attempts.push_back(a);
  return attempts.back();
}

bool same(const Attempt& a, const Attempt& b) {
  return a.id == b.id && a.scheduler_id == b.scheduler_id && a.restart == b.restart &&
         a.status == b.status && a.reason == b.reason && a.host == b.host &&
         a.exit_code == b.exit_code && a.started_at == b.started_at && a.ended_at == b.ended_at &&
         a.cancel_requested == b.cancel_requested;
}

// DIR/attempts.jsonl applied to `attempts`: each restart's start and end, as the job saw them.
void apply_attempt_events(const std::string& dir, std::vector<Attempt>& attempts) {
  std::ifstream in(dir + "/" + core::kAttemptsFile);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
    if (!e.is_object() || !e.contains("scheduler_id") || !e.contains("time") ||
        !e["time"].is_number() || !e.value("restart", nlohmann::json()).is_number_integer()) {
      continue;  // a line cut short by a killed job
    }
    Attempt& a = attempt_of(attempts, kSlurm + e["scheduler_id"].get<std::string>(),
                            e["restart"].get<int>());
    const double t = e["time"].get<double>();
    if (e.value("event", "") == "start") {
      a.started_at = t;
      a.host = e.value("host", "");
      if (!a.ended_at) {
        a.status = JobStatus::kRunning;
        if (!a.cancel_requested) a.reason.clear();  // no longer why it waits
      }
    } else if (e.value("event", "") == "end" && e.contains("exit") &&
               e["exit"].is_number_integer()) {
      const int rc = e["exit"].get<int>();
      a.ended_at = t;
      a.exit_code = rc;
      a.status = a.cancel_requested     ? JobStatus::kCancelled
                 : rc == 0              ? JobStatus::kDone
                 : rc == kExitPreempted ? JobStatus::kPreempted
                                        : JobStatus::kFailed;
      if (!a.cancel_requested)
        a.reason = rc == 0                ? ""
                   : rc == kExitPreempted ? "checkpoint written, requeued"
                                          : describe_exit(rc);
    }
  }
}

}  // namespace

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void Ledger::set_status(const std::string& key, JobStatus status, std::optional<int> exit_code,
                        const std::string& why, const std::string& scheduler_id) {
  store_.set_job_status(key, status, exit_code, why, scheduler_id);
}

void Ledger::started(const std::string& key, const std::string& pid) {
  Attempt a;
  a.scheduler_id = pid;
  a.status = JobStatus::kRunning;
  a.host = core::host_name();
  a.submitted_at = a.started_at = unix_now();
  store_.put_attempt(key, a, tracking::JobStatusUpdate{JobStatus::kRunning, std::nullopt, "", pid});
}

void Ledger::ended(const std::string& key, JobStatus status, std::optional<int> exit_code,
                   const std::string& reason) {
  std::vector<Attempt> attempts = store_.attempts(key);
  Attempt* a = open_attempt(attempts);
  if (!a) return;
  a->status = status;
  a->exit_code = exit_code;
  a->reason = reason.substr(0, reason.find('\n'));
  a->ended_at = unix_now();
  store_.put_attempt(key, *a);
}

void Ledger::intend(const std::vector<std::pair<std::string, Intent>>& intents) {
  std::vector<tracking::Store::AttemptWrite> writes;
  for (const auto& [key, intent] : intents) {
    Attempt a;
    a.scheduler_id = kIntent + intent.first_key + "#" + std::to_string(intent.task);
    a.status = JobStatus::kSubmitting;
    a.submitted_at = unix_now();
    writes.push_back(
        {key, a,
         tracking::JobStatusUpdate{JobStatus::kSubmitting, std::nullopt, "being submitted", ""}});
  }
  store_.put_attempts(writes);
}

void Ledger::submitted(const std::vector<std::pair<std::string, std::string>>& ids) {
  std::vector<tracking::Store::AttemptWrite> writes;
  for (const auto& [key, slurm_id] : ids) {
    std::vector<Attempt> attempts = store_.attempts(key);
    Attempt a;
    if (!attempts.empty() && attempts.back().scheduler_id.rfind(kIntent, 0) == 0) {
      a = attempts.back();
    } else {
      a.submitted_at = unix_now();
    }
    a.scheduler_id = kSlurm + slurm_id;
    a.status = JobStatus::kQueued;
    writes.push_back(
        {key, a,
         tracking::JobStatusUpdate{JobStatus::kQueued, std::nullopt, "", kSlurm + slurm_id}});
  }
  store_.put_attempts(writes);
}

std::optional<Intent> Ledger::open_intent(const std::string& key) {
  std::vector<Attempt> attempts = store_.attempts(key);
  if (attempts.empty() || attempts.back().status != JobStatus::kSubmitting) return std::nullopt;
  const std::string& sid = attempts.back().scheduler_id;
  const size_t hash = sid.rfind('#');
  if (sid.rfind(kIntent, 0) != 0 || hash == std::string::npos) return std::nullopt;
  Intent i;
  const size_t prefix = std::string(kIntent).size();
  i.first_key = sid.substr(prefix, hash - prefix);
  i.task = std::atoi(sid.c_str() + hash + 1);
  return i;
}

void Ledger::observe(const LedgerJob& job, const cluster::SlurmStatus& now) {
  const std::vector<Attempt> before = store_.attempts(job.key);
  std::vector<Attempt> attempts = before;
  apply_attempt_events(job.dir, attempts);
  // The submission's latest attempt: the highest restart of its id.
  Attempt* current = nullptr;
  for (auto& a : attempts) {
    if (a.scheduler_id == kSlurm + job.slurm_id && (!current || a.restart > current->restart))
      current = &a;
  }
  if (current && now.known && core::is_active(now.status)) {
    if (!current->started_at && !current->ended_at) current->reason = now.reason;
  } else if (current && !current->ended_at) {
    current->ended_at = unix_now();
    current->status = now.known ? now.status : JobStatus::kFailed;
    current->exit_code = now.exit_code;
    current->reason = now.known ? now.raw : "Slurm has no record of it";
  }
  for (size_t i = 0; i < attempts.size(); ++i) {
    if (i >= before.size() || !same(attempts[i], before[i]))
      store_.put_attempt(job.key, attempts[i]);
  }
}

void Ledger::finished_with_result(const std::string& key, double wall_s) {
  std::vector<Attempt> attempts = store_.attempts(key);
  Attempt* a = open_attempt(attempts);
  if (a && a->started_at) {  // its end event may not be written yet: the result says how long
    a->ended_at = *a->started_at + wall_s;
    a->status = JobStatus::kDone;
    a->exit_code = 0;
    a->reason.clear();
  }
  if (a) {
    store_.put_attempt(key, *a);
  } else if (!attempts.empty()) {
    store_.put_attempt(key, attempts.back());  // the sum again, over what ingest wrote
  }
}

void Ledger::request_cancel(const std::string& key) {
  std::vector<Attempt> attempts = store_.attempts(key);
  if (attempts.empty()) return;
  attempts.back().cancel_requested = true;
  attempts.back().reason = "cancelled by `upcycle cancel`";
  store_.put_attempt(key, attempts.back());
}

std::optional<std::string> Ledger::queued_slurm_id(const std::string& key) {
  auto row = store_.find_job(key);
  if (!row || row->scheduler_id.rfind(kSlurm, 0) != 0 ||
      (row->status != JobStatus::kQueued && row->status != JobStatus::kRunning)) {
    return std::nullopt;
  }
  return row->scheduler_id.substr(std::string(kSlurm).size());
}

std::vector<LedgerJob> Ledger::active_slurm_jobs(const std::vector<std::string>& runs) {
  std::string sql =
      "SELECT DISTINCT j.key, j.dir, j.stage, j.scheduler_id, j.status, "
      "COALESCE((SELECT a.cancel_requested FROM job_attempts a WHERE a.job_id = j.id ORDER BY "
      "a.id DESC LIMIT 1), 0) FROM jobs j "
      "JOIN run_jobs rj ON rj.job_id = j.id JOIN runs r ON r.id = rj.run_id "
      "WHERE (j.scheduler_id LIKE 'slurm:%' OR j.status = 'submitting') AND j.status IN " +
      core::active_statuses_sql();
  if (!runs.empty()) {
    sql += " AND r.name IN (";
    for (size_t i = 0; i < runs.size(); ++i) sql += i ? ",?" : "?";
    sql += ")";
  }
  std::vector<LedgerJob> out;
  for (const auto& row : store_.select(sql, runs).rows) {
    LedgerJob j;
    j.key = text_of(row[0]);
    j.dir = text_of(row[1]);
    j.stage = text_of(row[2]);
    const std::string sid = text_of(row[3]);
    j.status = core::parse_job_status(text_of(row[4])).value_or(JobStatus::kFailed);
    if (j.status != JobStatus::kSubmitting && sid.rfind(kSlurm, 0) == 0)
      j.slurm_id = sid.substr(std::string(kSlurm).size());
    j.cancel_requested = std::get<int64_t>(row[5]) != 0;
    out.push_back(std::move(j));
  }
  return out;
}

std::vector<std::string> Ledger::runs_with_active_jobs() {
  std::vector<std::string> out;
  for (const auto& row :
       store_
           .select("SELECT DISTINCT r.name FROM runs r JOIN run_jobs rj ON rj.run_id = r.id JOIN "
                   "jobs j ON j.id = rj.job_id WHERE (j.scheduler_id LIKE 'slurm:%' OR j.status "
                   "= 'submitting') AND j.status IN " +
                   core::active_statuses_sql())
           .rows) {
    out.push_back(text_of(row[0]));
  }
  return out;
}

std::vector<std::string> Ledger::failed_jobs(const std::vector<std::string>& runs) {
  if (runs.empty()) return {};
  std::string sql =
      "SELECT DISTINCT rj.stage, j.error FROM jobs j JOIN run_jobs rj ON rj.job_id = j.id JOIN "
      "runs r ON r.id = rj.run_id WHERE j.status IN ('failed', 'cancelled') AND r.name IN (";
  for (size_t i = 0; i < runs.size(); ++i) sql += i ? ",?" : "?";
  std::vector<std::string> out;
  for (const auto& row : store_.select(sql + ") ORDER BY rj.stage", runs).rows) {
    const std::string why = text_of(row[1]);
    out.push_back(text_of(row[0]) + ": " + why.substr(0, why.find('\n')));
  }
  return out;
}

bool Ledger::has_active_slurm_jobs() {
  auto n = store_.select(
      "SELECT COUNT(*) FROM jobs WHERE (scheduler_id LIKE 'slurm:%' OR status = 'submitting') "
      "AND status IN " +
      core::active_statuses_sql());
  return std::get<int64_t>(n.rows.at(0).at(0)) > 0;
}

void Ledger::update_run_statuses(const std::vector<int64_t>& runs) {
  std::string sql = "SELECT r.id, SUM(j.status = 'done'), SUM(j.status IN " +
                    core::active_statuses_sql() +
                    "), COUNT(*), SUM(j.status = 'failed') FROM runs r JOIN run_jobs rj ON "
                    "rj.run_id = r.id JOIN jobs j ON "
                    "j.id = rj.job_id WHERE r.status != 'done' GROUP BY r.id HAVING ";
  std::vector<std::string> binds;
  if (runs.empty()) {
    sql += "SUM(j.scheduler_id LIKE 'slurm:%' OR j.status = 'submitting') > 0";
  } else {
    sql += "r.id IN (";
    for (size_t i = 0; i < runs.size(); ++i) {
      sql += i ? ",?" : "?";
      binds.push_back(std::to_string(runs[i]));
    }
    sql += ")";
  }
  for (const auto& run : store_.select(sql, binds).rows) {
    auto n = [&](size_t c) {
      return std::holds_alternative<int64_t>(run[c]) ? std::get<int64_t>(run[c]) : 0;
    };
    store_.set_run_status(n(0), n(1) == n(3) ? "done"
                                : n(2) > 0   ? "running"
                                : n(4) > 0   ? "failed"
                                             : "cancelled");
  }
}

}  // namespace upcycle::runner
