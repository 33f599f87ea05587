// The trainer's checkpoints, written and read by every data-parallel rank together
// (stages/io/checkpoint_shards.h): each rank streams its part of the weights and the AdamW state it
// holds to its own files; rank 0 writes the manifest once every rank's files are durable, then
// swaps the checkpoint in. A rank that fails (or dies) before that leaves the previous checkpoint
// as it was. Loading reads whatever layout and number of ranks wrote it.
#pragma once

#include <string>
#include <vector>

#include "stages/io/checkpoint.h"
#include "stages/train/distributed.h"
#include "stages/train/optimizer.h"

namespace upcycle::stages {

/// The names of the model's trained parameters, in the optimizer's order (trained_parameters).
std::vector<std::string> trained_parameter_names(TransformerLm& model);

/// Collective: every rank calls it with the same `meta` (model config, position, extra) and
/// `with_optimizer` (false: the weights alone, for a final checkpoint that later stages only
/// read; such a checkpoint cannot continue this job's training). Rank 0
/// logs "checkpoint written" once the checkpoint is in place and durable. Throws StageError on
/// every rank when any rank fails.
///
/// Fault injection for tests: a process whose environment has UPCYCLE_TEST_KILL_IN_SAVE=STEP
/// kills itself (SIGKILL) in the save at that step, after its weight shard and before its AdamW
/// shard.
void save_train_checkpoint(const std::string& dir, TransformerLm& model, StepOptimizer& opt,
                           const std::vector<std::string>& names, const CheckpointMeta& meta,
                           DataParallel& dp, bool with_optimizer = true);

/// Restores the AdamW state of the checkpoint at `dir` (its manifest `meta`) into `opt`. Throws
/// StageError when the checkpoint holds none.
void load_optimizer_state(const std::string& dir, const CheckpointMeta& meta, StepOptimizer& opt,
                          const std::vector<std::string>& names);

}  // namespace upcycle::stages
