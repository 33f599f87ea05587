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
  std::string self_exe;            ///< the upcycle binary jobs run (`upcycle stage --spec`)
};

struct RunSummary {
  int done = 0;
  int skipped = 0;
  int failed = 0;
  bool interrupted = false;
  std::string run_name;
};

/// Runs the plan to completion (or failure/interruption). Throws StoreError/ClusterError on
/// infrastructure problems; job failures are counted, not thrown.
RunSummary execute_plan(const Recipe& recipe, const Plan& plan, const RunOptions& options,
                        cluster::Executor& executor);

}  // namespace upcycle::runner
