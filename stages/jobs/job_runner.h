// Entry point of one job: `upcycle-job stage --spec DIR/spec.json`. Reads and validates the spec,
// pins threads, claims the job directory, runs the job through its kind (jobs/job_kinds.h), and
// writes, last and atomically, result.json with the code that computed it.
#pragma once

#include <string>

namespace upcycle::stages {

/// Runs the job and returns its exit code: kExitOk, kExitPreempted, or kExitUserError after
/// printing the reason to stderr (which the executor captures in log.txt). Never throws.
int run_job(const std::string& spec_path);

/// Intra-op threads for LibTorch (and one inter-op thread), as every job sets them.
void set_torch_threads(int threads);

}  // namespace upcycle::stages
