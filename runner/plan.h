// Planning: a recipe resolves to a DAG of jobs. Each job has a content key
//   key = sha256(the kind's key material, input job keys, the kind's output version)
// (stages/spec/job_spec.h), so a job whose key is complete in the store is skipped, changing one
// branch expert re-runs only what depends on it, and upgrading upcycle re-runs only the kinds whose
// output version changed. Plans are pure: nothing runs and nothing is written.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/recipe.h"
#include "stages/arch/config.h"

namespace upcycle::runner {

struct PlannedJob {
  std::string stage;       ///< label: "seed", "experts/code"
  std::string stage_name;  ///< the recipe stage: "experts"
  std::string kind;        ///< the job kind: prepare | train | upcycle | eval | command
  int version = 0;         ///< the kind's output version
  std::string key;
  std::string dir;       ///< absolute job directory: ROOT/jobs/<key prefix>
  nlohmann::json spec;   ///< what `upcycle stage --spec` reads (spec.json)
  nlohmann::json keyed;  ///< exactly what the key hashes: {kind, version, spec: material, inputs}
  std::vector<size_t> deps;  ///< indices of jobs this one reads
  int threads = 1;           ///< per process (the stage's resources.threads, else the recipe's)
  int processes = 1;         ///< data-parallel processes (resources.processes)
  int retries = 0;           ///< extra attempts after a failure; not in the key
  cluster::SlurmResources slurm;  ///< what it asks Slurm for (executor slurm); not in the key
  bool produces_model = false;
  stages::ModelConfig model;  ///< the model it produces (train, upcycle)
  std::string detail;         ///< a kind's one-line summary for `upcycle plan` (budget, experts)
  double train_flops =
      0;              ///< train jobs: the FLOPs of the whole budget (the cost model's numerator)
  std::string shape;  ///< train jobs: what throughput depends on, to find past jobs like it
  /// Train jobs budgeted by measured time: the job whose device-seconds they match (their cost).
  std::optional<size_t> seconds_of;
};

struct Plan {
  std::vector<PlannedJob> jobs;  ///< topological order
  const PlannedJob* find(const std::string& stage_label) const;
};

struct PlanOptions {
  /// Whether the executor's hosts have CUDA: device auto resolves to cuda there, to cpu otherwise.
  bool cuda = false;
};

/// Resolves the recipe. Throws ConfigError naming the stage's file:line:col and the key for unknown
/// or cyclic references, domains that do not exist and inconsistent expert counts.
Plan make_plan(const Recipe& recipe, const PlanOptions& options = {});

/// "1.234e+15": FLOP counts in plans.
std::string format_flops(double flops);
/// "3.41k tok/s", "810EFLOP": three significant digits and an SI prefix, for people.
std::string format_si(double x, const std::string& unit);

/// Human-readable DAG: one line per job with kind, key, inputs and resolved budget. `why`, when
/// given, holds one status line per job (plan_status.h) printed under it.
std::string describe_plan(const Plan& plan, const std::vector<std::string>& why = {});

}  // namespace upcycle::runner
