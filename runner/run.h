// Executing a plan: the runner is the store's one writer. It records the run and its provenance,
// skips jobs whose key is already complete, launches the rest through an Executor as their inputs
// finish, retries failures, ingests each finished job directory, and stops cleanly on Ctrl-C.
#pragma once

#include <string>
#include <vector>

#include "cluster/executor.h"
#include "runner/plan.h"
#include "runner/recipe.h"

namespace upcycle::runner {

struct RunOptions {
  std::vector<std::string> force;  ///< stage names to re-run, with everything downstream
  int max_parallel = 0;            ///< 0: recipe's, else cores / threads
  std::string job_exe;      ///< the binary jobs run: `upcycle-job stage --spec` (job_binary.h)
  std::string tags;         ///< when set, replaces every run's tags ("a,b,k=v")
  bool wait = false;        ///< slurm: wait for the jobs instead of returning after submitting
  bool report = true;       ///< write ROOT/report/<run>/report.html after a run that succeeded
  int progress_every = 30;  ///< off a terminal: seconds between progress lines (0: none)
};

struct RunSummary {
  int done = 0;
  int skipped = 0;
  int failed = 0;
  int submitted = 0;  ///< queued on Slurm
  bool interrupted = false;
  std::vector<std::string> run_names;  ///< one per sweep point
};

/// One run: a recipe resolved at one sweep point, and its plan.
struct RunPoint {
  Recipe recipe;
  Plan plan;
};

/// Plan options for jobs run on this machine: device auto is cuda when this machine has CUDA.
PlanOptions local_plan_options();

/// The union of the points' jobs: a job whose content key several runs share appears once.
Plan merge_plans(const std::vector<RunPoint>& points);

/// Registers every run in the store and runs the union of their jobs to completion (or failure, or
/// interruption); each run's status follows its own jobs. Throws StoreError/ClusterError on
/// infrastructure problems; job failures are counted, not thrown.
RunSummary execute_runs(const std::vector<RunPoint>& points, const RunOptions& options,
                        cluster::Executor& executor);

}  // namespace upcycle::runner
