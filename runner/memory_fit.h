// Whether each training job fits its device, from the memory model (stages/arch/memory.h): for
// `upcycle plan --cost` (peak memory per GPU and whether it fits `cost.gpu`) and for `plan` and
// `run`, which refuse a stage that does not fit unless --allow-oversubscribe. A CUDA job's device
// is the recipe's `cost.gpu` (its memory as the driver reports it, less a margin for the CUDA
// context, NCCL's buffers and the caching allocator's fragmentation); a CPU job's is this
// machine's memory shared by the job's processes.
#pragma once

#include <optional>
#include <string>

#include "runner/plan.h"
#include "stages/arch/memory.h"

namespace upcycle::runner {

struct MemoryFit {
  stages::MemoryEstimate estimate;
  int64_t capacity_bytes = 0;  ///< what one rank may use
  int64_t device_bytes = 0;    ///< the device's memory (GPU, or this machine's RAM per rank)
  bool fits = true;
};

/// The fraction of a GPU's memory a job may plan to use.
inline constexpr double kGpuUsableFraction = 0.95;

/// Memory of a GPU model in `cost.gpu` (bytes, as the driver reports it); 0 if unknown.
int64_t gpu_memory_bytes(const std::string& gpu);

/// The estimate of a train job (nullopt for other kinds).
std::optional<MemoryFit> memory_fit(const PlannedJob& j, const CostSettings& cost);

/// The memory model's estimate of an upcycle job (surgery) or an eval job, from the models of the
/// jobs it reads (stages/arch/memory.h); nullopt for other kinds.
std::optional<stages::MemoryEstimate> job_memory_estimate(const Plan& plan, const PlannedJob& j);

/// Throws ConfigError for the first upcycle or eval job whose estimate (job_memory_estimate) is
/// over this machine's memory: for plans that run here.
void refuse_oversubscribed_here(const Plan& plan);

/// Throws ConfigError for the first train job that does not fit: the stage, the estimate against
/// the capacity, the largest terms and the settings that would make it fit.
void refuse_oversubscribed(const Plan& plan, const CostSettings& cost);

}  // namespace upcycle::runner
