// The prepare job: data/prepare.h on a PrepareJobSpec.
#include "stages/jobs/job_kinds.h"
#include "stages/spec/prepare.h"

namespace upcycle::stages {
namespace {

bool run_prepare_job(const SpecReader& s, const JobContext& ctx, core::JobResult& r) {
  PrepareJobSpec p;
  read_spec(s, p);
  p.out_dir = ctx.dir + "/data";
  p.tokenizer.threads = ctx.runtime.threads;
  PrepareOutput out = run_prepare(p);
  r.outputs["data_dir"] = p.out_dir;
  r.outputs["manifest_sha256"] = out.manifest_sha256;
  r.artifacts = out.artifacts;
  return true;
}

}  // namespace

JobKind prepare_job_kind() {
  return {PrepareJobSpec::kKind, PrepareJobSpec::kOutputVersion, check_spec<PrepareJobSpec>,
          run_prepare_job};
}

}  // namespace upcycle::stages
