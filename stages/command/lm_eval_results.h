// Parser for lm-evaluation-harness results JSON (`lm_eval ... --output_path OUT`), the first parser
// of the command stage. Rows are keyed by (task, metric, filter): v0.4 writes "acc,none" and
// "acc_stderr,none"; older versions write "acc" and "acc_stderr" (filter "none"). A stderr of "N/A"
// becomes null. n is n-samples.effective (else .original, else 0); n-shot is kept where present.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/job_files.h"

namespace upcycle::stages {

/// Rows for `model` from a parsed results document. Throws StageError naming `origin` when the
/// document has no "results" mapping.
std::vector<core::EvalRow> parse_lm_eval_results(const nlohmann::json& doc,
                                                 const std::string& model,
                                                 const std::string& origin);

/// `path` itself when it is a file; else the newest results*.json below the directory `path`
/// (lm-eval writes OUT/<model>/results_<time>.json). Throws StageError when there is none.
std::string find_lm_eval_results(const std::string& path);

}  // namespace upcycle::stages
