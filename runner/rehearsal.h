// A dress rehearsal (`upcycle run RECIPE --rehearse[=STEPS]`): every stage of a recipe with its
// own model, surgery and eval code, each train stage for STEPS optimizer steps, into a root and
// store of its own (runs/rehearsal/), so that a paper-scale recipe goes through once, cheaply,
// before anyone submits it. A rehearsal lowers only what does not change the model: the context
// (model.seq_len, by the user), the micro-batch (by the user), the batch (one micro-batch per
// step), validation and eval windows, the data-parallel processes (one; the per-rank memory of
// the replicated optimizer is the same) and the budgets (STEPS steps). Width, depth, vocabulary,
// experts and the surgery are the recipe's; an override that would change them is refused. Where
// the recipe's data is not on this machine it trains on the mini corpora's tokens (a 4096-piece
// tokenizer; every id below the recipe's vocabulary), with a warning. The final checkpoints keep
// the weights alone unless train.final_optimizer_state says otherwise. At the end: every job's
// memory estimate beside its measured peak, the wall time per step and the disk each used, then
// the BAM model exported (native, expert K/V) and reloaded to check it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runner/plan.h"
#include "runner/recipe.h"
#include "tracking/store.h"

namespace upcycle::runner {

inline constexpr const char* kRehearsalRoot = "runs/rehearsal";
/// The stand-in data's tokenizer: the mini recipe's 4096 pieces.
inline constexpr int64_t kRehearsalPieces = 4096;

struct Rehearsal {
  int64_t steps = 1;
  std::vector<std::string> overrides;  ///< the rehearsal's own, then the user's (which win)
  /// The user's overrides of where it runs (execution keys): the recipe the rehearsal is checked
  /// against (check_rehearsed); a data override that changes the vocabulary changes the model.
  std::vector<std::string> baseline;
  std::vector<std::string> changes;  ///< what it lowered or set, one line each, for people
  std::vector<std::string> warnings;
};

/// The rehearsal of the recipe at `path` under the user's `overrides`. Throws ConfigError for an
/// override a rehearsal does not allow (naming it and what may be lowered), a recipe with a sweep,
/// or stand-in data for a domain that has no built-in sources.
Rehearsal plan_rehearsal(const std::string& path, const std::vector<std::string>& overrides,
                         int64_t steps);

/// Throws ConfigError when `rehearsed` is not the recipe's model: any model key other than
/// seq_len differs, or seq_len, a micro-batch or a batch is larger than the recipe's.
void check_rehearsed(const Recipe& recipe, const Recipe& rehearsed);

/// One job of a finished rehearsal, from the store and its directory.
struct RehearsalRow {
  std::string stage, kind;
  double estimate_bytes = 0;  ///< memory/estimate_bytes (0: the job reports none)
  double peak_bytes = 0;      ///< memory/peak_bytes
  double wall_s = 0;          ///< the job's wall time
  double step_s = 0;          ///< train jobs: seconds per optimizer step (0 for other kinds)
  int64_t disk_bytes = 0;     ///< what its directory holds
};

std::vector<RehearsalRow> rehearsal_rows(tracking::Store& store, const std::string& run);

/// The rows as a table, with each estimate's ratio to its peak, and the disk in all.
std::string describe_rehearsal(const std::vector<RehearsalRow>& rows);

/// Exports the plan's BAM model with expert K/V (the mixture-trained one when there is one) in
/// the native format, imports the export into a checkpoint again and compares it with the
/// original, tensor by tensor, through upcycle-job. Returns what it did, for people; throws
/// StageError when the reload differs. Without a tokenizer (pre-tokenized data), or a BAM model
/// with expert K/V, says so and exports nothing.
std::string check_rehearsal_export(const Plan& plan, const std::string& root, int64_t* disk_bytes);

/// Bytes of the regular files under `dir` (symbolic links not followed); 0 when it is absent.
int64_t disk_usage(const std::string& dir);

}  // namespace upcycle::runner
