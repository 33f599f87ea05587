// Planning: a recipe resolves to a DAG of jobs. Each job has a content key
//   key = sha256(resolved job config, input job keys, code version)
// so a job whose key is complete in the store is skipped, and changing one branch expert re-runs only
// what depends on it. Plans are pure: nothing runs and nothing is written.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runner/recipe.h"
#include "stages/model/config.h"

namespace upcycle::runner {

struct PlannedJob {
  std::string stage;       ///< label: "seed", "experts/code"
  std::string stage_name;  ///< the recipe stage: "experts"
  std::string kind;        ///< prepare | train | upcycle | eval
  std::string key;
  std::string dir;         ///< absolute job directory: ROOT/jobs/<key prefix>
  nlohmann::json spec;     ///< what `upcycle stage --spec` reads
  std::vector<size_t> deps;  ///< indices of jobs this one reads
  int threads = 1;           ///< per process (the stage's resources.threads, else the recipe's)
  int processes = 1;         ///< data-parallel processes (resources.processes); not in the key
  int retries = 0;           ///< extra attempts after a failure
  bool produces_model = false;
  stages::ModelConfig model;  ///< the model it produces (train, upcycle)
};

struct Plan {
  std::string code_version;
  std::vector<PlannedJob> jobs;  ///< topological order
  const PlannedJob* find(const std::string& stage_label) const;
};

/// "<version>+<git sha>[-dirty]", part of every key.
std::string code_version();

/// Resolves the recipe. Throws ConfigError naming the stage's file:line:col and the key for unknown
/// or cyclic references, domains that do not exist and inconsistent expert counts.
Plan make_plan(const Recipe& recipe);

/// "1.234e+15": FLOP counts in plans.
std::string format_flops(double flops);

/// Human-readable DAG: one line per job with kind, key, inputs and resolved budget.
std::string describe_plan(const Plan& plan);

}  // namespace upcycle::runner
