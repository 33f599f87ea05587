// Entry point of one job: `upcycle stage --spec DIR/spec.json`. Reads the resolved spec, pins
// threads, runs the stage (prepare | train | upcycle | eval), writes metrics.jsonl and, last and
// atomically, result.json. This is the only place that knows every stage.
#pragma once

#include <string>

namespace upcycle::stages {

/// Runs the job and returns its exit code: kExitOk, kExitPreempted, or kExitUserError after printing
/// the reason to stderr (which the executor captures in log.txt). Never throws.
int run_job(const std::string& spec_path);

/// Intra-op threads for LibTorch (and one inter-op thread), as every job sets them.
void set_torch_threads(int threads);

}  // namespace upcycle::stages
