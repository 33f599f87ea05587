#include "stages/train/device.h"

#include <ATen/autocast_mode.h>
#include <torch/torch.h>
#include <torch/version.h>

#include "core/error.h"

// at::autocast took a device type in 2.4; Debian's 1.13 has the CUDA-only and CPU-only calls.
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
#define UPCYCLE_AUTOCAST_BY_DEVICE 1
#endif

namespace upcycle::stages {
namespace {

void set_autocast(bool cuda, bool on) {
#ifdef UPCYCLE_AUTOCAST_BY_DEVICE
  const auto type = cuda ? at::kCUDA : at::kCPU;
  at::autocast::set_autocast_enabled(type, on);
  if (on) at::autocast::set_autocast_dtype(type, at::kBFloat16);
#else
  if (cuda) {
    at::autocast::set_enabled(on);
    if (on) at::autocast::set_autocast_gpu_dtype(at::kBFloat16);
  } else {
    at::autocast::set_cpu_enabled(on);
    if (on) at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  }
#endif
}

}  // namespace

bool cuda_available() { return torch::cuda::is_available(); }

void synchronize(const Placement& p) {
  if (p.device.rfind("cuda", 0) == 0) torch::cuda::synchronize();
}

Placement resolve_placement(const std::string& device, const std::string& precision,
                            int local_rank) {
  Placement p;
  const bool cuda = device == "cuda" || (device == "auto" && cuda_available());
  if (device != "auto" && device != "cpu" && device != "cuda") {
    throw StageError("device '" + device + "' is not one of auto, cpu, cuda");
  }
  if (cuda) {
    if (!cuda_available()) {
      throw StageError("device cuda was asked for, but CUDA is not available to this process",
                       "run on a GPU node, or set device: cpu");
    }
    const int n = static_cast<int>(torch::cuda::device_count());
    if (local_rank >= n) {
      throw StageError("local rank " + std::to_string(local_rank) + " has no GPU (" +
                       std::to_string(n) + " visible)");
    }
    p.device = "cuda:" + std::to_string(local_rank);
  }
  if (precision == "auto") {
    p.bf16 = cuda;
  } else if (precision == "bf16" || precision == "fp32") {
    p.bf16 = precision == "bf16";
  } else {
    throw StageError("precision '" + precision + "' is not one of auto, fp32, bf16");
  }
  return p;
}

AutocastScope::AutocastScope(const std::string& device, bool enabled)
    : enabled_(enabled), cuda_(device.rfind("cuda", 0) == 0) {
  if (!enabled_) return;
  set_autocast(cuda_, true);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!enabled_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  set_autocast(cuda_, false);
}

}  // namespace upcycle::stages
