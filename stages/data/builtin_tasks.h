// Built-in downstream tasks, made by the prepare stage from each domain's held-out test documents
// so that every scale has downstream scores. Two kinds: easy enough to separate models at the mini
// scale, and harder ones kept for larger scales.
//   domain/<domain>    multiple choice: the true continuation of a test passage against
//   continuations,
//                      of about the same length, from each other domain's test passages (one per
//                      other domain). A model that knows the domain recognises its text after its
//                      context; at the mini scale each domain's expert beats the seed here
//                      (docs/results.md).
//   arith-mc/<domain>  for the math generator's documents: the problem and its worked solution up
//   to
//                      "Answer:", then the true answer against the answers of 3 other problems of
//                      the same kind (same form, other values); scored by log-likelihood, so a
//                      model that reads its worked solution gains, even where it cannot generate
//                      the answer.
//   cont/<domain>      (harder) the true continuation among 4, the other 3 continuations of other
//   test
//                      passages of the same domain: needs the context, not only the domain's style.
//   arith/<domain>     (harder) for the math generator's documents: greedy generation of the worked
//                      solution, exact match of its "Answer:" line.
// Each task has at most `max_examples` examples, chosen and ordered by document hash
// (deterministic). Task files are JSONL, one example per line, the same format users give
// (stages/eval/tasks.h):
//   {"task": "...", "context": "...", "choices": ["...", ...], "gold": 2}
//   {"task": "...", "prompt": "...", "answer": "...", "until": ["\nProblem:"]}
// No LibTorch.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/data/documents.h"

namespace upcycle::stages {

/// Where prepare writes a domain's built-in task file.
std::string builtin_task_path(const std::string& data_dir, const std::string& domain);

/// An eval's `tasks:` entry for built-in tasks: "builtin" (every family) or "builtin/FAMILY",
/// FAMILY one of domain, arith-mc, cont, arith (that family alone).
bool is_builtin_tasks(const std::string& entry);
/// Whether the task named `task` ("domain/code") is one of built-in entry `entry`'s.
bool in_builtin_tasks(const std::string& entry, const std::string& task);

/// Every domain's test documents, by domain name.
using TestDocuments = std::map<std::string, std::vector<Document>>;

/// Examples for `domain` from the test documents of every domain (`test_docs` holds `domain`), at
/// most `max_examples` per task. Math-generator documents give arith/ and arith-mc/ examples,
/// others cont/; every domain gives domain/ examples when there are other domains.
std::vector<nlohmann::json> make_builtin_examples(const std::string& domain,
                                                  const TestDocuments& test_docs,
                                                  int64_t max_examples);

/// The text after the last "Answer:" of `generation`, up to the end of its line, trimmed; "" if
/// none.
std::string extract_answer(const std::string& generation);

}  // namespace upcycle::stages
