// `upcycle bench store|plan`: the runner's and store's speed, for docs/benchmarks.md. Each prints
// its measurements as key=value lines; nothing here asserts a time.
#pragma once

#include <string>
#include <vector>

namespace upcycle::runner {

int cmd_bench(const std::vector<std::string>& args);

}  // namespace upcycle::runner
