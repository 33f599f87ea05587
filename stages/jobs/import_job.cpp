// The import job: a Hugging Face checkpoint -> an upcycle checkpoint with its tokenizer.model.
#include <optional>

#include "core/error.h"
#include "stages/io/checkpoint.h"
#include "stages/io/hf_export.h"
#include "stages/jobs/job_kinds.h"
#include "stages/spec/import.h"

namespace upcycle::stages {
namespace {

bool run_import_job(const SpecReader& s, const JobContext& ctx, core::JobResult& r) {
  ImportJobSpec spec;
  read_spec(s, spec);
  if (hf_checkpoint_fingerprint(spec.path) != spec.fingerprint) {
    throw StageError(spec.path + ": the checkpoint changed since the job was planned",
                     "run the recipe again so the job is keyed by its new content");
  }
  const std::string ckpt = ctx.dir + "/checkpoint";
  import_hf(spec.path, ckpt,
            spec.seq_len > 0 ? std::optional<int64_t>(spec.seq_len) : std::nullopt);
  r.outputs["checkpoint"] = ckpt;
  r.artifacts.push_back(checkpoint_artifact(ckpt));
  return true;
}

}  // namespace

JobKind import_job_kind() {
  return {ImportJobSpec::kKind, ImportJobSpec::kOutputVersion, check_spec<ImportJobSpec>,
          run_import_job};
}

}  // namespace upcycle::stages
