// `upcycle params` and `upcycle flops`: parameter and FLOP accounting of every model a recipe
// produces, or of one model config file.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "analysis/table.h"
#include "stages/arch/config.h"

namespace upcycle::runner {

struct Plan;

using NamedModel = std::pair<std::string, stages::ModelConfig>;

/// The models behind `input`: every model-producing job of a recipe (only `stage`, if given), or
/// the one model of a config file (named after it). Throws ConfigError.
std::vector<NamedModel> models_for_accounting(const std::string& input,
                                              const std::vector<std::string>& overrides,
                                              const std::string& stage);

/// Table or stable JSON, one object per model:
///   {"model", "total", "active", "embedding", "attention", "ffn", "routers", "norms"}
std::string params_report(const std::vector<NamedModel>& models, const std::string& format);

/// Forward FLOPs per token at `context` (0: each model's seq_len), per layer split into attention,
/// FFN and routers (BAM Table 10). Table: one row per distinct layer shape; JSON, one object per
/// model:
///   {"model", "context", "layers": [{"attention", "ffn", "routers", "total"}], "head", "forward",
///    "training"}
std::string flops_report(const std::vector<NamedModel>& models, int64_t context,
                         const std::string& format);

/// Ours beside the paper's: Table 9 (`what` = "params": total and active) or Table 7 ("flops":
/// attention, FFN and total forward FLOPs per token of one layer, at the paper's context of 256).
/// One row per paper row, with the recipe's model standing for it, the difference, and the reason
/// where they differ.
analysis::Table accounting_vs_paper(const std::vector<NamedModel>& models, const std::string& what);

/// What a compute-matched row depends on, from one recipe's models at their own seq_len: the dense
/// seed's parameters and embedding share (input embedding + untied head), the shares of its forward
/// FLOPs per token in attention, FFN and LM head, and the training FLOPs per token of BAM (expert
/// K/V) and of BAM with shared K/V over BTX's. Ratios are NaN where the recipe lacks the model.
struct Proportions {
  int64_t dense_params = 0;
  double embedding_share = 0;
  double attention_share = 0, ffn_share = 0, head_share = 0;
  double bam_over_btx = 0, bam_shared_over_btx = 0;
};

/// Throws ConfigError when the plan has no dense model.
Proportions proportions_of(const Plan& plan);

/// `upcycle flops --compare`: one row per recipe, or per point of a sweep (named as its run), in a
/// table, markdown or JSON, with the fields above and the compute-matched token shares (BTX's
/// tokens that BAM gets: 1 / ratio).
std::string proportions_report(const std::vector<std::string>& recipes, const std::string& format);

}  // namespace upcycle::runner
