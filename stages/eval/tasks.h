// Downstream tasks from JSONL task files (stages/data/builtin_tasks.h gives the format), scored as
// lm-evaluation-harness scores them:
//   multiple choice  loglik(choice | context) = sum of the choice's token log-probabilities, where
//                    the choice's tokens are encode(context + choice) after the first
//                    len(encode(context')) tokens, context' being the context without its trailing
//                    whitespace, which goes to the choice (the harness's _encode_pair);
//                    acc = [argmax loglik = gold], acc_norm = [argmax loglik / len(choice) = gold];
//                    an example's choices run as one right-padded batch
//                    with len in characters (code points); the first maximum wins ties
//   generation       greedy decoding (16 prompts at a time with a KV cache, unless `kv_cache` is
//   false:
//                    one at a time without; the same tokens either way, stages/eval/generate.h)
//                    until an `until` string, EOS or max_new_tokens; exact_match = [extracted
//                    answer = answer] (the text after "Answer:" when the example's answer line has
//                    that form, else the whole generation, trimmed)
// Inputs longer than the context window are cut from the left. Every metric carries n and the
// stderr of the mean (sample standard deviation / sqrt(n)), as the harness reports.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "stages/data/tokenizer.h"
#include "stages/model/transformer.h"

namespace upcycle::stages {

struct TaskExample {
  std::string task;
  std::string context;               ///< multiple choice
  std::vector<std::string> choices;  ///< multiple choice
  int gold = -1;                     ///< multiple choice
  std::string prompt;                ///< generation
  std::string answer;                ///< generation
  std::vector<std::string> until;    ///< generation stop strings
  bool is_generation() const { return !prompt.empty(); }
};

/// Reads a task file. Throws StageError naming path:line for a malformed example.
std::vector<TaskExample> load_task_file(const std::string& path);

struct TaskScore {
  std::string task;
  std::string metric;  ///< acc | acc_norm | exact_match
  double value = 0;
  double stderr_value = 0;
  int64_t n = 0;
};

/// Per task and metric, the value of each scored example in task-file order (what the harness's
/// --log_samples writes per document).
using ExampleScores = std::map<std::string, std::map<std::string, std::vector<double>>>;

/// Scores every example (at most `max_examples` per task; 0 = all). One score per task and metric,
/// in the order tasks first appear; each example's scores into `per_example` when given.
std::vector<TaskScore> evaluate_tasks(TransformerLm& model, const Tokenizer& tok,
                                      const std::vector<TaskExample>& examples,
                                      int64_t max_examples, int64_t max_new_tokens,
                                      bool kv_cache = true, ExampleScores* per_example = nullptr);

/// Mean and stderr of the mean of 0/1 (or any) values, as lm-evaluation-harness computes them.
std::pair<double, double> mean_and_stderr(const std::vector<double>& xs);

/// Index of the largest value, the first on ties (numpy's argmax).
size_t first_argmax(const std::vector<double>& xs);

}  // namespace upcycle::stages
