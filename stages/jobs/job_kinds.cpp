#include "stages/jobs/job_kinds.h"

#include <filesystem>

#include "core/sha256.h"
#include "stages/io/checkpoint.h"

namespace upcycle::stages {

const std::vector<JobKind>& job_kinds() {
  static const std::vector<JobKind> kKinds = {prepare_job_kind(), train_job_kind(),
                                              upcycle_job_kind(), eval_job_kind(),
                                              command_job_kind(), import_job_kind()};
  return kKinds;
}

const JobKind& find_job_kind(const std::string& name) {
  std::string names;
  for (const auto& k : job_kinds()) {
    if (k.name == name) return k;
    names += (names.empty() ? "" : ", ") + k.name;
  }
  throw core::FieldError("kind", "unknown job kind '" + name + "' (kinds: " + names + ")");
}

core::ArtifactRow checkpoint_artifact(const std::string& dir) {
  std::string path = dir + "/" + kWeightsFile;
  return {dir, "checkpoint", core::sha256_file(path),
          static_cast<int64_t>(std::filesystem::file_size(path))};
}

}  // namespace upcycle::stages
