// Learning-rate schedule: linear warmup from 0 to the peak, then cosine decay to min_ratio * peak
// at the last step (BAM §5.1: warmup, cosine to 10%). No LibTorch.
#pragma once

#include <cmath>
#include <cstdint>

namespace upcycle::stages {

struct LrSchedule {
  double peak = 1e-3;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  double min_ratio = 0.1;

  /// Learning rate for optimizer step `step` (0-based).
  double at(int64_t step) const {
    if (warmup_steps > 0 && step < warmup_steps)
      return peak * double(step + 1) / double(warmup_steps);
    int64_t decay_steps = total_steps - warmup_steps;
    if (decay_steps <= 0) return peak;
    double progress = std::min(1.0, double(step - warmup_steps) / double(decay_steps));
    double cosine = 0.5 * (1.0 + std::cos(M_PI * progress));
    return peak * (min_ratio + (1.0 - min_ratio) * cosine);
  }
};

}  // namespace upcycle::stages
