// The measured peak of the memory a training job's tensors hold, for the `memory/peak_bytes` metric
// that the memory model (stages/arch/memory.h) is checked against. On CUDA: the caching
// allocator's peak of allocated bytes (what max_memory_allocated reports). On the CPU: LibTorch's
// own accounting through a reporting allocator that wraps the CPU allocator (installed once, at
// the job's start), counting the bytes of every live tensor storage; not the process's RSS, which
// also holds code, the allocator's caches and fragmentation.
#pragma once

#include <cstdint>
#include <string>

namespace upcycle::stages {

/// Installs the reporting CPU allocator (idempotent). Storage allocated before it is not counted.
void track_cpu_memory();

/// Bytes held by tensors now, and the most since the last reset, on `device` ("cpu" or "cuda:N");
/// 0 on the CPU before track_cpu_memory.
int64_t memory_in_use(const std::string& device);
int64_t memory_peak(const std::string& device);
/// Restarts the peak from what is in use now.
void reset_memory_peak(const std::string& device);

}  // namespace upcycle::stages
