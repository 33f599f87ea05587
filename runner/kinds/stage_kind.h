// The recipe side of the stage-kind registry: for each kind, its recipe keys and their validation
// (parse) and how a stage of it expands into jobs (plan). The runner dispatches through it and
// nowhere else names a kind. The job side (how each job runs) is stages/jobs/job_kinds.h; the typed
// spec between them is stages/spec/<kind>.h. Adding a kind: docs/stage-kinds.md.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runner/recipe.h"
#include "runner/yaml_reader.h"

namespace upcycle::runner {

class Planner;

/// A stage another stage reads, and the recipe key that names it (for errors).
struct StageInput {
  std::string key;  ///< "from", "models", "btm", "budget.match"
  std::string stage;
};

class StageKind {
 public:
  virtual ~StageKind() = default;
  virtual std::string name() const = 0;
  /// The kind's own keys, besides kind, resources and retries, which every stage takes.
  virtual std::vector<std::string> keys() const = 0;
  /// Jobs of this kind may run as several data-parallel processes (resources.processes).
  virtual bool data_parallel() const { return false; }
  /// Its jobs produce models that other stages can read.
  virtual bool produces_models() const { return false; }
  /// It prepares the data every other job reads; a recipe has exactly one such stage.
  virtual bool provides_data() const { return false; }
  /// Reads and validates the stage's keys (`r` is the stage's mapping; the recipe's data, model and
  /// train defaults are parsed already). Throws ConfigError naming file, line and key.
  virtual std::shared_ptr<const StageParams> parse(const YamlReader& r,
                                                   const Recipe& recipe) const = 0;
  /// The SentencePiece model this stage's models come with ("" for none): the prepare stage
  /// tokenizes the data with it instead of training one (an imported Hugging Face model's
  /// tokenizer.model).
  virtual std::string tokenizer(const StageDef&) const { return ""; }
  /// The stages whose jobs this stage needs planned first.
  virtual std::vector<StageInput> inputs(const StageDef& s) const = 0;
  /// Expands the stage into jobs with Planner::add.
  virtual void plan(const StageDef& s, Planner& p) const = 0;
};

/// One function per kind, each in runner/kinds/<kind>.cpp.
const StageKind& prepare_kind();
const StageKind& train_kind();
const StageKind& branch_kind();
const StageKind& upcycle_kind();
const StageKind& eval_kind();
const StageKind& command_kind();
const StageKind& import_kind();

/// Every registered kind, in the order `upcycle --help` and errors list them.
const std::vector<const StageKind*>& stage_kinds();
/// The kind called `name`, or null.
const StageKind* find_stage_kind(const std::string& name);

/// A core::FieldError (from the typed spec's validation) as a ConfigError at the YAML key that set
/// the field, or its nearest parent the recipe wrote: `r` is the node whose keys the spec's fields
/// mirror.
ConfigError spec_error_at(const YamlReader& r, const std::string& field, const std::string& reason);

}  // namespace upcycle::runner
