// Running a plan on Slurm: the whole DAG queued at once (afterok dependencies, a stage's jobs with
// the same inputs as one array), each job's Slurm id kept in the store as "slurm:ID". The runner
// may exit after submitting; `collect` (what `status`, `wait` and a later `run` or `resume` do
// first) re-attaches through those ids with one scheduler query, ingests finished job directories
// and records failures with their reason. The runner host stays the store's only writer.
#pragma once

#include <string>
#include <vector>

#include "cluster/slurm_executor.h"
#include "runner/run.h"
#include "tracking/store.h"

namespace upcycle::runner {

/// Submits every job of the points that is neither complete nor already queued or running under
/// Slurm, and records its id. Returns after submitting (summary.submitted counts them).
RunSummary submit_runs(const std::vector<RunPoint>& points, const RunOptions& options,
                       cluster::SlurmExecutor& slurm);

struct CollectSummary {
  int active = 0;  ///< queued or running
  int done = 0;    ///< finished and ingested by this pass
  int failed = 0;  ///< failed by this pass (including cancelled because an input failed)
  std::vector<std::string> events;  ///< one line per change, for people
};

/// One pass over the unfinished Slurm jobs of `runs` (all runs when empty): one squeue call for
/// all of them. Needs the runner lock. Throws ClusterError when the controller does not answer.
CollectSummary collect(tracking::Store& store, cluster::SlurmExecutor& slurm,
                       const std::vector<std::string>& runs);

/// How long `wait` keeps retrying a controller that does not answer, by default.
inline constexpr double kUnreachableGraceS = 600;

/// collect() until nothing is active, sleeping 1 s, then longer (up to 30 s) while nothing changes;
/// prints each event. A controller that does not answer is retried with backoff for
/// `unreachable_grace_s` ("controller unreachable since ..."), then ClusterError. Returns the
/// totals.
CollectSummary wait_for(tracking::Store& store, cluster::SlurmExecutor& slurm,
                        const std::vector<std::string>& runs,
                        double unreachable_grace_s = kUnreachableGraceS,
                        int progress_every = RunOptions{}.progress_every);

/// Cancels the runs' queued and running Slurm jobs: the cancel mark in the ledger and in each job
/// directory first (so a job that checkpoints on the signal does not requeue itself), then scancel,
/// then collect until they have left the queue (at most a minute). Returns how many.
int cancel_runs(tracking::Store& store, cluster::SlurmExecutor& slurm,
                const std::vector<std::string>& runs);

/// A collect pass over the store at `store_path` when it has unfinished Slurm jobs and no runner
/// holds it (what `upcycle status` does first); a warning when the controller does not answer,
/// silent otherwise.
void refresh_slurm_jobs(const std::string& store_path);

/// The executor for jobs under `root` run by `job_exe` (upcycle-job).
cluster::SlurmExecutor slurm_executor(const std::string& root, const std::string& job_exe);

}  // namespace upcycle::runner
