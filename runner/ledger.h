// The job ledger: every attempt of every job, on either executor, recorded in the store
// (job_attempts) with its scheduler id, restart count, start, end, exit code and reason; and the
// job's status, which follows from it. The runner's one writer of job statuses: the local
// scheduler (run.cpp) and the Slurm driver (slurm_run.cpp) report what happened here, and
// `status`, `wait`, `cancel` and `resume` read it.
//
// Slurm submissions are written twice: the intent before sbatch (status "submitting", naming the
// submission's first job and the task), the id after. A runner that dies between the two leaves
// the intent, and the next pass looks the submission up by its name and comment before it submits
// again (SlurmExecutor::find_active).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "cluster/slurm_output.h"
#include "core/job_status.h"
#include "tracking/store.h"

namespace upcycle::runner {

/// A job the Slurm driver follows.
struct LedgerJob {
  std::string key, dir, stage;
  std::string slurm_id;  ///< "45" or "45_2"; "" while only the intent is recorded
  core::JobStatus status = core::JobStatus::kPending;
  bool cancel_requested = false;
};

/// An intent left by a runner that died before it recorded the Slurm id.
struct Intent {
  std::string first_key;  ///< the key of the submission's first job (its name and comment)
  int task = -1;          ///< the job's index in the array, -1 when not an array
};

class Ledger {
 public:
  explicit Ledger(tracking::Store& store) : store_(store) {}

  /// The job's status (and the error column: why it failed, or why it waits).
  void set_status(const std::string& key, core::JobStatus status,
                  std::optional<int> exit_code = std::nullopt, const std::string& why = "",
                  const std::string& scheduler_id = "");

  /// Local executor: a new attempt started on this host as process `pid`.
  void started(const std::string& key, const std::string& pid);
  /// The open attempt ended with `status`.
  void ended(const std::string& key, core::JobStatus status, std::optional<int> exit_code,
             const std::string& reason);

  /// Slurm: the intents of a pass's jobs (key, intent), in one transaction before its first
  /// sbatch; then the ids each sbatch returned (key, id), one transaction per submission.
  void intend(const std::vector<std::pair<std::string, Intent>>& intents);
  void submitted(const std::vector<std::pair<std::string, std::string>>& ids);
  /// The intent a dead runner left for `key`, if its last attempt is one.
  std::optional<Intent> open_intent(const std::string& key);

  /// Slurm: brings the job's attempts up to date with DIR/attempts.jsonl (each restart's start
  /// and end, written by the job) and with what Slurm says now.
  void observe(const LedgerJob& job, const cluster::SlurmStatus& now);
  /// Slurm: the job's result is in and ingested: its open attempt ends done after `wall_s` (the
  /// result's), and the job's wall time is the sum over its attempts again.
  void finished_with_result(const std::string& key, double wall_s);
  /// `upcycle cancel`: the mark on the open attempt, before any signal.
  void request_cancel(const std::string& key);

  /// The Slurm id of job `key` while it is queued or running there, else nullopt.
  std::optional<std::string> queued_slurm_id(const std::string& key);
  /// The Slurm jobs of `runs` (every run when empty) that are not finished.
  std::vector<LedgerJob> active_slurm_jobs(const std::vector<std::string>& runs);
  /// The names of the runs with unfinished Slurm jobs.
  std::vector<std::string> runs_with_active_jobs();
  /// "STAGE: why" for each failed or cancelled job of `runs` (the first line of why).
  std::vector<std::string> failed_jobs(const std::vector<std::string>& runs);
  /// Whether any Slurm job of the store is unfinished (cheap; `status` asks it first).
  bool has_active_slurm_jobs();
  /// The status of each unfinished run with Slurm jobs (or of `runs`, by id) from its jobs: done,
  /// running, failed, or cancelled (nothing failed, something was cancelled).
  void update_run_statuses(const std::vector<int64_t>& runs = {});

 private:
  tracking::Store& store_;
};

/// Unix seconds now.
double unix_now();

}  // namespace upcycle::runner
