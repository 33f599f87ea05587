// The eval job's spec (kind "eval"): perplexity of each model (and of BTM ensembles) on each
// domain's held-out split, and downstream tasks (built-in and user JSONL files, pinned by sha256).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/spec/job_spec.h"

namespace upcycle::stages {

struct EvalModel {
  std::string name;        ///< the stage label, e.g. "experts/code"
  std::string checkpoint;  ///< path (follows from an input key)
};

/// Experts ensembled at eval time (BTM), scored under `name`.
struct EvalEnsemble {
  std::string name;
  std::vector<EvalModel> members;
};

/// "builtin" (the prepare job's task file of every evaluated domain) or a JSONL task file.
struct EvalTask {
  std::string path;    ///< "builtin" or the file
  std::string sha256;  ///< of the file when planned; the job refuses a file changed since
};

struct EvalJobSpec {
  static constexpr const char* kKind = "eval";
  /// Bump with any change to what eval jobs produce (perplexity windows, task scoring, generation).
  // 2: routing/<domain> rows; 3: bytes and bpb rows; 4: the harness's trailing-whitespace rule,
  // examples.jsonl; 5: a multiple-choice example with a choice longer than the context is not
  // scored (as the harness refuses it) instead of scored on its truncated tail
  static constexpr int kOutputVersion = 5;
  /// In the job directory: each task example's scores, one JSON line {model, task, doc_id, metric:
  /// value}.
  static constexpr const char* kExamplesFile = "examples.jsonl";

  std::string data_dir;  ///< the prepare job's data (path)
  std::vector<std::string> domains;
  std::string split = "test";  ///< test | valid
  int64_t max_windows = 0;     ///< per domain; 0 = every window
  std::vector<EvalTask> tasks = {{"builtin", ""}};
  int64_t max_examples = 0;     ///< per task; 0 = all
  int64_t max_new_tokens = 64;  ///< generation tasks
  bool kv_cache = true;         ///< greedy generation with a KV cache (same tokens; not in the key)
  bool examples_file = true;    ///< write kExamplesFile (not in the key)
  /// auto (bf16 on CUDA, fp32 on the CPU) | fp32 | bf16: the forward passes under bf16 autocast;
  /// log-likelihoods are summed in fp32 (per token) and fp64 (across tokens) either way. In the key
  /// when the effective precision is bf16, so fp32 keys are those of eval jobs before this field.
  std::string precision = "auto";
  std::vector<EvalModel> models;
  std::vector<EvalEnsemble> ensembles;
};

/// The scalar fields, declared once (core/fields.h): the recipe keys of an eval stage besides
/// models, btm, domains and tasks (which the planner resolves), and the job's data_dir and domains.
const core::Fields<EvalJobSpec>& eval_fields();

void validate(const EvalJobSpec& s);
nlohmann::json to_json(const EvalJobSpec& s);
void read_spec(const SpecReader& r, EvalJobSpec& out);
nlohmann::json key_material(const EvalJobSpec& s, const JobRuntime& rt);

}  // namespace upcycle::stages
