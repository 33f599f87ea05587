// Built-in downstream tasks, made by the prepare stage from each domain's held-out test documents so
// that every scale has downstream scores:
//   cont/<domain>   multiple choice: the true continuation of a test document among 4 (the other 3
//                   are continuations of other test documents of the domain); acc and acc_norm
//   arith/<domain>  for the math generator's documents: greedy generation of the worked solution,
//                   exact match of its "Answer:" line
// Task files are JSONL, one example per line, the same format users give (stages/eval/tasks.h):
//   {"task": "...", "context": "...", "choices": ["...", ...], "gold": 2}
//   {"task": "...", "prompt": "...", "answer": "...", "until": ["\nProblem:"]}
// No LibTorch.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/data/documents.h"

namespace upcycle::stages {

/// Where prepare writes a domain's built-in task file.
std::string builtin_task_path(const std::string& data_dir, const std::string& domain);

/// Examples for `domain` from its test documents, at most `max_examples`, chosen and ordered by
/// document hash (deterministic). Math-generator documents give arith/ examples, others cont/.
std::vector<nlohmann::json> make_builtin_examples(const std::string& domain, std::vector<Document> test_docs,
                                                  int64_t max_examples);

/// The text after the last "Answer:" of `generation`, up to the end of its line, trimmed; "" if none.
std::string extract_answer(const std::string& generation);

}  // namespace upcycle::stages
