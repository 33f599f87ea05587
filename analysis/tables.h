// The paper-style tables, computed from the store (read-only). No LibTorch.
//
// Seeds: a table of run R pools R with every run of its experiment whose sweep point differs from
// R's only in `seed` (a sweep `seed: [1, 2, 3]`), and shows mean ± sample std and n per cell.
// Paper: beside ours, the paper's row for each model (analysis/paper_numbers.json maps stage labels
// to rows) and its change against the paper's reference row (BTX) in %, with ours against our BTX:
// absolute numbers differ at another scale, orderings can be compared. Jobs that did not finish
// are named in the notes; the paper's rows without a model of ours only with all_rows.
#pragma once

#include <string>
#include <vector>

#include "analysis/table.h"
#include "tracking/store.h"

namespace upcycle::analysis {

/// What a table is computed from.
enum class TableSource {
  kPerplexity,      ///< eval's perplexity (or bits per byte) per model and domain
  kDownstream,      ///< eval's and the harness's task scores
  kValidationLoss,  ///< each train stage's last validation loss
  kRecipe,          ///< parameters and FLOPs of a recipe's models (runner/accounting_report.h)
};

/// One table `upcycle table NAME` knows: its name, what it shows, where its rows come from, the
/// paper table beside it, and whether the HTML report and `upcycle run` show it.
struct TableDef {
  std::string name;
  std::string what;
  TableSource source;
  std::string paper;  ///< analysis/paper_numbers.json table id ("" for none)
  bool in_report = false;
};

/// Every table, in the order `--list` shows them. The one place a table is declared.
const std::vector<TableDef>& table_registry();

/// The table named `name`; ConfigError listing the known ones otherwise.
const TableDef& find_table(const std::string& name);

/// The tables `upcycle table NAME` knows, with one line each.
NamedList table_names();

/// The metrics a perplexity table can show: ppl and bpb.
const NamedList& perplexity_metrics();

struct TableOptions {
  std::string run;             ///< "" = the latest run
  std::string metric = "ppl";  ///< perplexity tables: ppl or bpb (perplexity_metrics())
  bool all_rows = false;       ///< also the paper's rows this run has no model for
};

/// Table `name` for a run of the store. A run without results of that kind gives a Table whose
/// no_rows says so (a value, not an error). Throws ConfigError for an unknown name or metric,
/// StoreError for a store without runs or an unknown run.
Table make_table(tracking::Store& store, const std::string& name, const TableOptions& options);

/// Perplexity (or bits per byte, options.metric "bpb") per model and domain (BAM Table 1 layout)
/// against paper table `paper_id` ("ppl", "ppl-2b", "attention-routing", "param-matched"). The
/// average is over the paper's own domains for that table (its `average_of`), said in a note.
Table perplexity_table(tracking::Store& store, const std::string& paper_id,
                       const TableOptions& options);

/// Downstream scores: per model and task metric, the value ± its stderr (one run) or mean ± std
/// across seeds.
Table downstream_table(tracking::Store& store, const TableOptions& options);

/// Final validation loss and tokens of every training stage (NVIDIA's ablations compare these at
/// equal tokens: router order, weight scaling, virtual-group granularity).
Table validation_loss_table(tracking::Store& store, const TableOptions& options);

/// `run` and the runs of its experiment whose sweep point differs only in `seed`, `run` first.
std::vector<std::string> seed_group(tracking::Store& store, const std::string& run);

/// `run_name`, or when it is empty the most recently updated run; throws StoreError for an empty
/// store.
std::string run_or_latest(tracking::Store& store, const std::string& run_name);

/// The name of the most recently updated run, or "" when the store has none.
std::string latest_run(tracking::Store& store);

}  // namespace upcycle::analysis
