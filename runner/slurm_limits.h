// What each job asks Slurm for, settled against the site before anything is submitted, and the
// site's refusals found then rather than half-way through a DAG:
//   time: auto     the cost model's estimate x safety, capped at slurm.max_time or the partition's
//                  MaxTime; what is left over becomes a planned requeue chain (each link
//                  checkpoints signal_seconds before its limit and requeues itself), added to
//                  max_requeues (the allowance for preemptions).
//   signal_seconds auto: 2 x the slowest checkpoint save measured for the job's shape + 60 s, at
//                  least kSignalFloorS, at most half the time limit.
//   checks         each job's partition exists, its time, nodes, CPUs, memory and GPUs per node fit
//                  the partition's limits and node sizes, and `sbatch --test-only` accepts each
//                  distinct job shape.
#pragma once

#include <string>
#include <vector>

#include "cluster/slurm_executor.h"
#include "cluster/slurm_site.h"
#include "runner/plan.h"
#include "runner/recipe.h"
#include "tracking/store.h"

namespace upcycle::runner {

/// The job as the Slurm executor submits it.
cluster::SlurmJob slurm_job(const PlannedJob& j);

/// Settles time, max_requeues and signal_seconds of the jobs of `plan` (those marked in `only`,
/// every one when it is empty; store may be null: no history). Returns one line per job saying
/// what it asks for and why.
std::vector<std::string> settle_slurm_limits(Plan& plan, const CostSettings& cost,
                                             tracking::Store* store,
                                             const std::vector<cluster::Partition>& site,
                                             const std::vector<bool>& only = {});

/// Every refusal, "STAGE: LIMIT: value": the site's limits, then sbatch --test-only per distinct
/// shape (only when the limits pass). Empty when everything would be accepted.
std::vector<std::string> slurm_refusals(const Plan& plan,
                                        const std::vector<cluster::Partition>& site,
                                        const cluster::SlurmExecutor& slurm,
                                        const std::vector<bool>& only = {});

/// settle_slurm_limits and slurm_refusals with the site read from the controller; throws
/// ClusterError listing every refusal. What `run` does before its first sbatch.
void prepare_for_slurm(Plan& plan, const CostSettings& cost, tracking::Store* store,
                       const cluster::SlurmExecutor& slurm, const std::vector<bool>& only);

}  // namespace upcycle::runner
