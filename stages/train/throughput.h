// The real trainer on synthetic tokens, timed: what `upcycle bench train` and the cost model's
// bench source measure. Torch-free header.
#pragma once

#include <cstdint>
#include <string>

#include "stages/arch/config.h"

namespace upcycle::stages {

/// Trains `m` from scratch on uniform random tokens in scratch folder `dir` (removed after) and
/// returns tokens per second over `steps` steps after 2 untimed warm-up steps, on this process's
/// threads, on `device` (auto | cpu | cuda) in `precision` (auto | fp32 | bf16; device.h).
double train_tokens_per_s(const ModelConfig& m, int64_t batch, int64_t micro_batch, int64_t steps,
                          const std::string& dir, const std::string& device = "cpu",
                          const std::string& precision = "auto");

}  // namespace upcycle::stages
