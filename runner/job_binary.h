// The CLI's way to LibTorch: `upcycle-job`, installed next to `upcycle` (stages/jobs/job_main.cpp).
// The CLI itself does not load LibTorch, so commands that only plan, submit or read the store start
// at once.
#pragma once

#include <string>
#include <vector>

#include "stages/arch/config.h"

namespace upcycle::runner {

/// The path of upcycle-job beside this binary. Throws InternalError when it is missing.
std::string job_binary();

/// Runs `upcycle-job ARGS...` (export, import, compare: conversions of whole checkpoints, up to a
/// day) and returns its stdout; throws StageError with its error message (without the
/// "upcycle-job CMD: " prefix) when it fails.
std::string run_job_tool(const std::vector<std::string>& args);

/// Replaces this process with `upcycle-job stage --spec SPEC` (`upcycle stage`); returns only on
/// error.
int exec_job(const std::string& spec);

/// Whether LibTorch sees a CUDA device on this machine (asked of upcycle-job once, and only when
/// the kernel has an NVIDIA device node).
bool local_cuda();

/// Tokens per second of the trainer on `m` here (stages/train/throughput.h), through upcycle-job;
/// 0 when the measurement fails (the message goes to the log). `device` and `precision` as a train
/// job's (stages/train/device.h).
double measure_throughput(const stages::ModelConfig& m, int64_t batch, int64_t micro_batch,
                          int64_t steps, int threads, const std::string& scratch,
                          const std::string& device = "cpu", const std::string& precision = "auto");

}  // namespace upcycle::runner
