// What a stage kind's recipe side (runner/kinds/) sees while it expands its stage into jobs: the
// recipe, the jobs planned so far, and `add`, which keys a job from the kind's typed spec.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "runner/plan.h"
#include "runner/recipe.h"
#include "stages/spec/job_spec.h"

namespace upcycle::runner {

/// A job as a kind hands it over: its spec as JSON and its key material, from the typed spec.
struct JobDraft {
  std::string kind;
  int version = 0;
  nlohmann::json fields;    ///< the kind's spec fields, paths included
  nlohmann::json material;  ///< what the key hashes (no paths)
  stages::JobRuntime runtime;
};

/// Validates the spec (the same code the job runs on it) and drafts it. Throws core::FieldError.
template <typename Spec>
JobDraft draft(const Spec& spec, const stages::JobRuntime& runtime) {
  validate(spec);
  return {Spec::kKind, Spec::kOutputVersion, to_json(spec), key_material(spec, runtime), runtime};
}

class Planner {
 public:
  Planner(const Recipe& r, std::string root, PlanOptions options);
  Plan run();

  const Recipe& recipe() const { return r_; }
  const PlannedJob& job(size_t i) const { return plan_.jobs.at(i); }
  PlannedJob& job(size_t i) { return plan_.jobs.at(i); }

  /// Keys and adds a job of stage `s` labelled `label`, reading the jobs `deps`; returns its index.
  /// A core::FieldError thrown while a kind plans (draft's validation) becomes a ConfigError naming
  /// the stage.
  size_t add(const StageDef& s, const std::string& label, const JobDraft& d,
             const std::vector<size_t>& deps);
  /// The key and directory `add` will give these inputs (for specs that hold their own directory).
  std::string key_of(const JobDraft& d, const std::vector<size_t>& deps) const;
  std::string dir_of(const std::string& key) const { return root_ + "/jobs/" + key.substr(0, 16); }

  /// How jobs of `s` run: its threads and device (auto resolved), `world_size` processes.
  stages::JobRuntime runtime(const StageDef& s, int world_size = 1) const;
  /// The prepare job (the data every other job reads); throws when the recipe has none yet.
  size_t data_job() const;
  void set_data_job(size_t id) { data_job_ = id; }
  std::string data_dir() const { return job(data_job()).dir + "/data"; }

  /// The model-producing jobs of stage `name`, which `reader` names under `key`.
  std::vector<size_t> models_of(const StageDef& reader, const std::string& key,
                                const std::string& name) const;
  /// The one model of stage `name` (read through `from`).
  size_t single_model(const StageDef& reader, const std::string& name) const;
  /// Throws unless `domain` is in data.domains (with a "did you mean").
  void check_domain(const StageDef& s, const std::string& key, const std::string& domain) const;

 private:
  const Recipe& r_;
  std::string root_;
  PlanOptions options_;
  Plan plan_;
  size_t data_job_ = static_cast<size_t>(-1);
  std::map<std::string, std::vector<size_t>> by_stage_;
};

/// "FILE:LINE:COL: stages.NAME.KEY: message".
ConfigError stage_error(const StageDef& s, const std::string& key, const std::string& msg,
                        const std::string& hint = "");

}  // namespace upcycle::runner
