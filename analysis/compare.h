// `upcycle compare RUN...`: runs side by side. No LibTorch.
#pragma once

#include <string>
#include <vector>

#include "tracking/store.h"

namespace upcycle::analysis {

/// One row per (model, task, metric, filter) that any of `runs` has, filtered by a --where
/// expression ("" for all); then one value column per run, NULL where a run lacks the result.
/// Throws StoreError naming a run the store does not have, ConfigError for a bad expression.
tracking::ResultSet compare_results(tracking::Store& store, const std::vector<std::string>& runs,
                                    const std::string& where);

/// The recipe keys whose resolved values differ between `runs`: key, then one column per run.
tracking::ResultSet compare_params(tracking::Store& store, const std::vector<std::string>& runs);

}  // namespace upcycle::analysis
