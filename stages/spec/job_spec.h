// The envelope every job spec shares, and how a kind's content key is made. A job spec (spec.json
// in the job directory, written by the planner, read by `upcycle stage --spec`) is one JSON object:
//   kind, version   the stage kind and the output version its key was made with
//   key, stage      the content key and the stage label ("experts/code")
//   input_keys      content keys of the jobs it reads
//   threads, device, world_size   how it runs (JobRuntime)
//   ...             the kind's own fields (prepare.h, train.h, upcycle.h, eval.h, command.h)
// Content key = sha256 of {kind, version, the kind's key material, input keys}. Key material is the
// kind's fields minus paths (which follow from input keys), plus the runtime settings its numbers
// depend on (numerics_of). Scheduling settings (retries, max_parallel, paths) are never in a key,
// and neither is the git sha: a kind's integer output version, bumped with any change to what its
// jobs produce, stands for the code (docs/stage-kinds.md).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/spec/spec_reader.h"

namespace upcycle::stages {

struct JobRuntime {
  int threads = 1;  ///< intra-op threads per process
  std::string device =
      "cpu";  ///< cpu | cuda: resolved by the planner (auto: cuda where the executor has GPUs)
  int world_size = 1;  ///< data-parallel processes of a train job
};

struct JobHeader {
  std::string kind;
  int version = 0;
  std::string key;
  std::string stage;
  std::vector<std::string> inputs;  ///< input content keys
};

/// Fields of the envelope, which every kind's reader accepts besides its own.
const std::vector<std::string>& envelope_fields();

void write_envelope(nlohmann::json& j, const JobHeader& h, const JobRuntime& r);
JobHeader read_header(const SpecReader& s);
/// threads in [1, 4096], device cpu | cuda, world_size in [1, 65536].
JobRuntime read_runtime(const SpecReader& s);

/// What a job's numbers depend on beyond its fields: the device kind, the CPU thread count
/// (LibTorch's CPU reductions split work by thread) and the data-parallel world size (the
/// all-reduce order).
nlohmann::json numerics_of(const JobRuntime& r);

/// sha256 of the canonical (sorted, compact) JSON of kind, version, material and input keys.
std::string content_key(const std::string& kind, int version, const nlohmann::json& material,
                        const std::vector<std::string>& input_keys);

/// Throws core::FieldError for a field not in `own` nor in the envelope.
void expect_fields(const SpecReader& s, std::initializer_list<const char*> own);

}  // namespace upcycle::stages
