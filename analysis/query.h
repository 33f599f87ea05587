// The `upcycle query --where EXPR` language, compiled to SQL with every value bound (never
// spliced).
//
//   expr    := term { OR term }          term := factor { AND factor }
//   factor  := NOT factor | '(' expr ')' | field op value | field [NOT] IN '(' value {',' value}
//   ')' op      := = | != | < | <= | > | >= | LIKE value   := number | 'text' | "text" | bare-word
//   field   := run | experiment | stage | model | task | metric | filter | value | stderr | n |
//   n_shot
//            | status | tags
//            | params.<recipe key>    e.g. params.stages.seed.optim.lr, params.seed
//            | metrics.<metric key>   the final value of a training metric of the job that produced
//                                     the evaluated model, e.g. metrics.tokens, metrics.val_loss
// Keywords are case-insensitive. Rows are evaluation results (one per run, model, task, metric).
// Unlike MLflow's filter strings this has OR, NOT, IN and parentheses.
#pragma once

#include <string>
#include <vector>

namespace upcycle::analysis {

struct CompiledQuery {
  std::string sql;                 ///< a full SELECT over evaluation results
  std::vector<std::string> binds;  ///< positional values for its '?'
};

/// Compiles `where` ("" selects everything), restricted to run `run` when not empty, into SQL.
/// Throws ConfigError naming the column of the expression where it fails
/// ("--where: column 14: unknown field 'modle'; did you mean 'model'?").
CompiledQuery compile_query(const std::string& where, const std::string& run = "");

}  // namespace upcycle::analysis
