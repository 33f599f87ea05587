// The paper-style tables, computed from the store (read-only). No LibTorch.
//
// Seeds: a table of run R pools R with every run of its experiment whose sweep point differs from
// R's only in `seed` (a sweep `seed: [1, 2, 3]`), and shows mean ± sample std and n per cell.
// Paper: beside ours, the paper's row for each model (analysis/paper_numbers.json maps stage labels
// to rows) and its change against the paper's reference row (BTX) in %, with ours against our BTX:
// absolute numbers differ at another scale, orderings can be compared. Missing results and jobs
// that did not finish are shown, never dropped.
#pragma once

#include <string>
#include <vector>

#include "analysis/table.h"
#include "tracking/store.h"

namespace upcycle::analysis {

/// The tables `upcycle table NAME` knows, with one line each.
const NamedList& table_names();

/// Throws ConfigError listing the known tables unless `name` is one.
void check_table_name(const std::string& name);

/// The metrics a perplexity table can show: ppl and bpb.
const NamedList& perplexity_metrics();

/// Table `name` for `run` ("" = the latest); perplexity tables show `metric`
/// (perplexity_metrics()). Throws ConfigError for an unknown name or metric (listing the known
/// ones), StoreError naming what is missing (no runs, no results of that kind).
Table make_table(tracking::Store& store, const std::string& name, const std::string& run,
                 const std::string& metric = "ppl");

/// Perplexity (or bits per byte, metric "bpb") per model and domain (BAM Table 1 layout) against
/// paper table `paper_id` ("ppl", "ppl-2b", "attention-routing", "param-matched").
Table perplexity_table(tracking::Store& store, const std::string& run,
                       const std::string& paper_id = "ppl", const std::string& metric = "ppl");

/// Downstream scores: per model and task metric, the value ± its stderr (one run) or mean ± std
/// across seeds.
Table downstream_table(tracking::Store& store, const std::string& run);

/// Final validation loss and tokens of every training stage (NVIDIA's ablations compare these at
/// equal tokens: router order, weight scaling, virtual-group granularity).
Table validation_loss_table(tracking::Store& store, const std::string& run);

/// `run` and the runs of its experiment whose sweep point differs only in `seed`, `run` first.
std::vector<std::string> seed_group(tracking::Store& store, const std::string& run);

/// `run_name`, or when it is empty the most recently updated run; throws StoreError for an empty
/// store.
std::string run_or_latest(tracking::Store& store, const std::string& run_name);

/// The name of the most recently updated run, or "" when the store has none.
std::string latest_run(tracking::Store& store);

}  // namespace upcycle::analysis
