// The job side of the stage-kind registry: for each kind of job, how its spec is checked and how it
// runs. `upcycle stage --spec` (job_runner.h) dispatches through it and nowhere else names a kind.
// The recipe side of each kind (keys, validation, expansion into jobs) is in runner/kinds/.
// Adding a kind: docs/stage-kinds.md.
#pragma once

#include <string>
#include <vector>

#include "core/job_files.h"
#include "stages/arch/memory.h"
#include "stages/spec/job_spec.h"

namespace upcycle::stages {

struct JobContext {
  std::string dir;  ///< the job directory (spec.json, result.json, log.txt live here)
  JobHeader header;
  JobRuntime runtime;
};

struct JobKind {
  std::string name;
  int output_version = 0;
  /// Reads and validates the kind's fields; throws core::FieldError naming the first bad one.
  void (*check)(const SpecReader& spec) = nullptr;
  /// Runs the job and fills the result; false when preempted (checkpoint written, requeue wanted).
  bool (*run)(const SpecReader& spec, const JobContext& ctx, core::JobResult& result) = nullptr;
};

/// One function per kind, each in its <kind>_job.cpp.
JobKind prepare_job_kind();
JobKind train_job_kind();
JobKind upcycle_job_kind();
JobKind eval_job_kind();
JobKind command_job_kind();
JobKind import_job_kind();

/// Every registered kind.
const std::vector<JobKind>& job_kinds();
/// Throws core::FieldError on "kind" naming the registered kinds when there is none called `name`.
const JobKind& find_job_kind(const std::string& name);

/// A kind's JobKind::check: reads (and so validates) a spec of type Spec.
template <typename Spec>
void check_spec(const SpecReader& r) {
  Spec s;
  read_spec(r, s);
}

/// Measures the memory a job's tensors hold from construction to report(), as the trainer does
/// (train/peak_memory.h), for the jobs that do not train (surgery, eval): report() writes
/// `memory/estimate_bytes` (the memory model's) and `memory/peak_bytes` to the job's metrics.
class JobMemory {
 public:
  explicit JobMemory(std::string device);
  void report(const JobContext& ctx, const MemoryEstimate& estimate) const;

 private:
  std::string device_;
};

/// The artifact row of a checkpoint directory's weights.
core::ArtifactRow checkpoint_artifact(const std::string& checkpoint_dir);

}  // namespace upcycle::stages
