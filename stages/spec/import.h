// The import job's spec (kind "import"): a Hugging Face checkpoint directory read as an upcycle
// checkpoint (stages/io/hf_export.h), with its tokenizer. The path is not keyed; the checkpoint's
// fingerprint (stages/arch/hf_config.h) is, and the job refuses to run when it changed since
// planning.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "stages/spec/job_spec.h"

namespace upcycle::stages {

struct ImportJobSpec {
  static constexpr const char* kKind = "import";
  /// Bump with any change to what import jobs produce (weight mapping, config mapping).
  static constexpr int kOutputVersion = 1;

  std::string path;         ///< the Hugging Face checkpoint directory (absolute)
  std::string fingerprint;  ///< hf_checkpoint_fingerprint(path) at plan time
  int64_t seq_len = 0;      ///< training context; 0 = the checkpoint's max_position_embeddings
};

/// The fields, declared once (core/fields.h): the recipe keys `path` and `seq_len`, and the planned
/// fingerprint, which is the key (the path is not).
const core::Fields<ImportJobSpec>& import_fields();

void validate(const ImportJobSpec& s);
nlohmann::json to_json(const ImportJobSpec& s);
void read_spec(const SpecReader& r, ImportJobSpec& out);
nlohmann::json key_material(const ImportJobSpec& s, const JobRuntime& rt);

}  // namespace upcycle::stages
