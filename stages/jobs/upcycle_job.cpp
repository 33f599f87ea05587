// The upcycle job: dense checkpoints -> one MoE checkpoint (upcycle/surgery.h).
#include "stages/io/checkpoint.h"
#include "stages/jobs/job_kinds.h"
#include "stages/spec/upcycle.h"
#include "stages/upcycle/surgery.h"

namespace upcycle::stages {
namespace {

bool run_upcycle_job(const SpecReader& s, const JobContext& ctx, core::JobResult& r) {
  UpcycleJobSpec u;
  read_spec(s, u);
  const JobMemory memory("cpu");  // surgery runs on the CPU
  UpcycleResult res = upcycle_dense(u);
  const MemoryEstimate estimate = estimate_surgery_memory(
      read_checkpoint_meta(u.inputs.at(0)).model, int64_t(u.inputs.size()), res.config);
  CheckpointMeta meta;
  meta.model = res.config;
  meta.extra = {{"method", core::enum_name(kUpcycleMethodNames, u.method)}, {"sources", u.inputs}};
  std::string ckpt = ctx.dir + "/checkpoint";
  save_checkpoint(ckpt, res.state, meta);
  memory.report(ctx, estimate);
  r.outputs["checkpoint"] = ckpt;
  r.artifacts.push_back(checkpoint_artifact(ckpt));
  return true;
}

}  // namespace

JobKind upcycle_job_kind() {
  return {UpcycleJobSpec::kKind, UpcycleJobSpec::kOutputVersion, check_spec<UpcycleJobSpec>,
          run_upcycle_job};
}

}  // namespace upcycle::stages
