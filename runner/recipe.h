// Recipes: YAML parsed at once into typed structs and validated before anything runs. Every key is
// documented in recipes/README.md. YAML::Node does not appear here.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "cluster/slurm_resources.h"
#include "stages/arch/config.h"
#include "stages/spec/prepare.h"
#include "stages/spec/train.h"

namespace upcycle::runner {

class StageKind;  // runner/kinds/stage_kind.h

/// Training settings and budget: the recipe's `train:` gives defaults, each training stage may
/// override any of them. The settings' defaults and ranges are the train job spec's
/// (stages/spec/train.h).
struct TrainDef {
  int64_t tokens = 0;  ///< budget.tokens; 0 when the budget is matched
  std::string match;   ///< budget.match: a train stage whose budget this one matches
  /// budget.by: tokens (data-matched) | flops (compute-matched, analytic) | time (compute-matched
  /// by measured throughput: the matched stage's device-seconds, as the paper's TPU-core-days)
  std::string match_by = "tokens";
  std::string match_rate;  ///< budget.rate (by: time): a train stage of this one's shape whose
                           ///< measured tokens per device-second turn those seconds into tokens
  stages::TrainSettings settings;
};

/// A stage kind's own recipe keys, typed; each kind defines its struct (runner/kinds/).
struct StageParams {
  virtual ~StageParams() = default;
};

/// One entry of `stages:`. What every kind has is here; the rest is the kind's StageParams.
struct StageDef {
  std::string name;
  const StageKind* kind = nullptr;  ///< from the registry (runner/kinds/stage_kind.h)
  std::string location;             ///< "file:line:col" of the stage, for errors found later (plan)
  int threads = 0;                  ///< resources.threads; 0 = the recipe's threads
  std::string device;               ///< resources.device; "" = the recipe's device
  int processes = 1;  ///< resources.processes: data-parallel processes per job (training kinds)
  int retries = -1;   ///< -1 = the recipe's retries
  cluster::SlurmResources slurm;  ///< the recipe's slurm: with the stage's slurm: over it
  std::shared_ptr<const StageParams> params;

  /// The kind's parameters as P, or null when the stage is of another kind.
  template <typename P>
  const P* as() const {
    return dynamic_cast<const P*>(params.get());
  }
  std::string kind_name() const;
};

/// The cost model's assumptions (`cost:`), used where no past job of the same shape ran: a device's
/// peak times an MFU. `upcycle plan --cost`, and `slurm.time: auto`, read them.
struct CostSettings {
  std::string gpu = "h100";  ///< peak table in runner/cost.cpp: h100, h200, a100, l40s, a10, v100
  double mfu = 0.35;         ///< model FLOPs utilisation assumed on GPUs
  double cpu_flops = 2e10;   ///< per CPU thread, achieved (not peak)
  double safety = 1.5;       ///< time: auto = estimate x safety, rounded up
  int min_minutes = 10;  ///< and at least this many minutes (start-up, data loading, evaluation)
};

/// One axis of a `sweep:` grid.
struct SweepAxis {
  std::string key;                   ///< key path, "stages.seed.optim.lr"
  std::vector<std::string> values;   ///< YAML text each
  std::vector<std::string> origins;  ///< where each value is written, "file:line:col"
};

/// Where the store and the jobs go when a recipe (or a command) does not say.
inline constexpr const char* kDefaultStore = "runs/store.sqlite";
inline constexpr const char* kDefaultRoot = "runs";

/// Whether a flattened recipe key ("stages.seed.resources.threads") says where or how a run
/// executes (executor, store, threads, retries, Slurm and cost settings, file names) rather than
/// what it computes. A run's identity is its flat recipe without these keys.
bool is_execution_key(const std::string& flat_key);

struct Recipe {
  std::string file;
  std::string name;
  std::string run_name;            ///< name, or "name/key=value,..." at a sweep point
  std::string sweep_point = "{}";  ///< JSON {key: value} of this sweep point
  /// `sweep:` grid in file order; expanded by load_recipes.
  std::vector<SweepAxis> sweep;
  std::string store = kDefaultStore;
  std::string root = kDefaultRoot;
  uint64_t seed = 0;
  int threads = 1;                 ///< per job
  std::string executor = "local";  ///< local | slurm
  cluster::SlurmResources slurm;   ///< slurm: defaults for every stage
  CostSettings cost;
  std::string device =
      "auto";            ///< auto | cpu | cuda; jobs' keys hold the device kind it resolves to
  int max_parallel = 0;  ///< 0 = cores / threads
  int retries = 0;
  stages::PrepareJobSpec data;  ///< data: (the prepare job's spec, less its seed)
  /// data.seed: the prepare job's seed (math generation, tokenizer sample); unset = `seed`. Pinned,
  /// a sweep over `seed` varies training only and every point shares the data job.
  std::optional<uint64_t> data_seed;
  stages::ModelConfig model;
  bool has_model = true;         ///< the recipe has model:; without one, only imported models exist
  TrainDef train;                ///< the recipe-level train: defaults
  std::vector<StageDef> stages;  ///< in file order
  std::string resolved_yaml;     ///< the recipe after overrides, as YAML
  std::map<std::string, std::string> flat;  ///< resolved recipe flattened to "a.b.c" -> value

  const StageDef* find_stage(const std::string& name) const;
  std::vector<std::string> domain_names() const;
};

/// Loads a model config file (YAML or JSON; the keys of stages::ModelConfig, dense or mixture) for
/// `upcycle params/flops CONFIG`. Throws ConfigError naming the file, line and key.
stages::ModelConfig load_model_config(const std::string& path);

/// True when the YAML file at `path` is a recipe (has a top-level `stages`), false for a model
/// config. Throws ConfigError when it does not parse.
bool is_recipe_file(const std::string& path);

/// Loads, applies "a.b.c=value" overrides, parses and validates. Throws ConfigError naming the
/// file, line, column and key path (or the override) for every problem.
Recipe load_recipe(const std::string& path, const std::vector<std::string>& overrides = {});
/// Loads a recipe and expands its `sweep:` grid (the cartesian product of the listed values) into
/// one Recipe per point, each validated with the point's values applied as overrides. Without a
/// sweep, one Recipe. Throws ConfigError as load_recipe does, naming the point for errors in one.
std::vector<Recipe> load_recipes(const std::string& path,
                                 const std::vector<std::string>& overrides = {});

/// The same from text (tests); `file` names it in errors.
Recipe parse_recipe(const std::string& text, const std::string& file,
                    const std::vector<std::string>& overrides = {});

}  // namespace upcycle::runner
