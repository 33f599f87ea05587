// Where a job computes and in what precision: the CPU in fp32 by default, or a CUDA device with
// bf16 autocast (matmuls in bf16, norms, softmax and losses in fp32; optimizer state fp32, the
// weights too unless the ZeRO optimizer keeps them in bf16 with fp32 masters, optimizer.h). The
// header is torch-free; the .cpp holds the LibTorch calls.
#pragma once

#include <string>

namespace upcycle::stages {

struct Placement {
  std::string device = "cpu";  ///< "cpu" or "cuda:N"
  bool bf16 = false;           ///< bf16 autocast around forward passes
};

/// `device`: auto (CUDA when available) | cpu | cuda. `precision`: auto (bf16 on CUDA, fp32 on CPU)
/// | fp32 | bf16 (on CPU: CPU autocast, for testing the bf16 path without a GPU). `local_rank`
/// picks the GPU of a data-parallel process. Throws StageError when CUDA is asked for and missing.
Placement resolve_placement(const std::string& device, const std::string& precision,
                            int local_rank);

bool cuda_available();

/// Waits until the placement's device has finished the work queued so far (no-op on the CPU): the
/// trainer's throughput clock starts and stops at such points.
void synchronize(const Placement& p);

/// bf16 autocast for the device type of `device` while in scope; does nothing when !enabled.
class AutocastScope {
 public:
  AutocastScope(const std::string& device, bool enabled);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  bool enabled_;
  bool cuda_;
};

}  // namespace upcycle::stages
