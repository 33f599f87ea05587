// The paper-style tables, computed from the store (read-only). No LibTorch.
#pragma once

#include <string>

#include "tracking/store.h"

namespace upcycle::analysis {

/// BAM Table 1 layout: one row per model, one column per domain (perplexity on the test split), and
/// "avg", the mean over the domain columns. `run` = "" takes the most recently updated run.
tracking::ResultSet perplexity_table(tracking::Store& store, const std::string& run);

/// Downstream scores: one row per model, one column per "task metric" (acc, acc_norm, exact_match,
/// lm-eval metrics with a filter other than none as "task metric,filter"), in result order.
tracking::ResultSet downstream_table(tracking::Store& store, const std::string& run);

/// `run_name`, or when it is empty the most recently updated run; throws StoreError for an empty store.
std::string run_or_latest(tracking::Store& store, const std::string& run_name);

/// The name of the most recently updated run, or "" when the store has none.
std::string latest_run(tracking::Store& store);

}  // namespace upcycle::analysis
