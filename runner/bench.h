// `upcycle bench store|plan`: the runner's and store's speed, for docs/benchmarks.md. Each prints
// its measurements as key=value lines; nothing here asserts a time.
#pragma once

#include <string>
#include <vector>

#include "stages/model/config.h"

namespace upcycle::runner {

int cmd_bench(const std::vector<std::string>& args);

/// The real trainer on synthetic tokens in scratch folder `dir` (removed after): tokens per second
/// over `steps` steps after 2 untimed warm-up steps, on this process's threads. Also the cost model's
/// bench source.
double train_tokens_per_s(const stages::ModelConfig& m, int64_t batch, int64_t micro_batch, int64_t steps,
                          const std::string& dir);

}  // namespace upcycle::runner
