// The cost model: each job's wall time and GPU-hours before anything is submitted, for
// `upcycle plan --cost` and for `slurm.time: auto`. A training job's FLOPs come from the models'
// accounting (stages/arch/accounting.h); its throughput, in order of preference, from
//   store   past jobs of the same shape (model, batch, device kind, precision, ranks, threads):
//   their
//           mean tokens/s
//   bench   `--bench`: a few steps of the trainer on synthetic tokens, here and now (when the job's
//           device kind is this machine's)
//   mfu     the recipe's `cost:` assumption: MFU x the GPU's peak x ranks, or cpu_flops x threads
// Each estimate says which it used. Other kinds have no estimate; their time limit stays the
// partition's default.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "runner/plan.h"
#include "tracking/store.h"

namespace upcycle::runner {

struct JobCost {
  std::string source;       ///< store | bench | mfu | matched (budget.by time) | "" (none)
  double tokens_per_s = 0;  ///< assumed throughput
  double seconds = 0;       ///< estimated wall time
  double gpu_hours = 0;     ///< seconds x GPUs / 3600 (0 on the CPU)
};

/// Measures a training job's tokens per second on this machine (the bench source); 0 when it
/// cannot.
using ThroughputBench = std::function<double(const PlannedJob&)>;

/// One estimate per job of `plan`. `store` (may be null) holds the history; `bench` (may be empty)
/// measures shapes the store has not seen.
std::vector<JobCost> estimate_costs(const Plan& plan, const CostSettings& cost,
                                    tracking::Store* store, const ThroughputBench& bench = {});

/// The Slurm time limit for an estimate: seconds x safety, at least min_minutes, rounded up to
/// whole minutes, as "D-HH:MM:00". "" when there is no estimate.
std::string time_limit(const JobCost& c, const CostSettings& cost);

/// The table `upcycle plan --cost` prints: per job, FLOPs, throughput and its source, wall time,
/// GPU-hours, the time limit, and for train jobs the memory model's peak per GPU (or process) and
/// whether it fits (memory_fit.h); then the totals.
std::string describe_costs(const Plan& plan, const std::vector<JobCost>& costs,
                           const CostSettings& cost);

/// The same as JSON (`plan --cost --format json`): an array with one object per job: stage, kind,
/// source, tokens_per_s, seconds, gpu_hours, time_limit, and for train jobs peak_memory_bytes,
/// gpu_memory_bytes (the device's, or this machine's memory per process for CPU jobs),
/// capacity_bytes, fits, peak_phase and memory_breakdown ({term: bytes}).
nlohmann::json costs_json(const Plan& plan, const std::vector<JobCost>& costs,
                          const CostSettings& cost);

/// A Slurm time limit ("D-HH:MM:00") from seconds, rounded up to minutes.
std::string slurm_duration(double seconds);

}  // namespace upcycle::runner
