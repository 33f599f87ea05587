// The contract between a job (`upcycle stage --spec DIR/spec.json`) and the runner that ingests it.
// A job writes into its own directory:
//   spec.json      the resolved job spec (written by the runner before launch)
//   metrics.jsonl  appended, one JSON object per line (core/metric_sink.h)
//   log.txt        the job's stdout and stderr (written by the executor)
//   result.json    written last and atomically; its presence with status "done" is the truth of
//   success
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/provenance.h"

namespace upcycle::core {

inline constexpr const char* kSpecFile = "spec.json";
inline constexpr const char* kResultFile = "result.json";
inline constexpr const char* kMetricsFile = "metrics.jsonl";
inline constexpr const char* kLogFile = "log.txt";
/// Under Slurm, one JSON line per attempt event, appended by rank 0: {"event": "start"|"end",
/// "scheduler_id", "restart", "time" (unix s), "host", and at the end "exit"}. The runner's ledger
/// reads it to know each attempt's start and end (runner/ledger.h).
inline constexpr const char* kAttemptsFile = "attempts.jsonl";
/// Written by `upcycle cancel` before it signals the job: the batch script then exits instead of
/// requeueing, whatever the job's exit code.
inline constexpr const char* kCancelMark = "cancel-requested";
/// Bumped when result.json changes incompatibly; readers reject other versions. Version 2 added the
/// digest (kResultDigestKey): sha256 of the rest, checked on every read; version 1 results (no
/// digest) are still read.
inline constexpr int kResultFormatVersion = 2;
inline constexpr const char* kResultDigestKey = "digest";

/// One evaluation number: perplexity of a model on a domain, or a downstream task metric.
struct EvalRow {
  std::string model;   ///< stage-qualified model name, e.g. "seed", "experts/code", "bam_dm"
  std::string task;    ///< "ppl/<domain>" for perplexity, else the task name
  std::string metric;  ///< "ppl", "nll", "acc", "acc_norm", "exact_match"
  double value = 0;
  std::optional<double> stderr_value;  ///< null where the harness reports "N/A"
  int64_t n = 0;                       ///< tokens for perplexity, examples for tasks
  std::string filter = "none";    ///< lm-evaluation-harness filter ("none", "strict-match", ...)
  std::optional<int64_t> n_shot;  ///< few-shot examples, where known
};

/// A training run's realised blend: how many of its samples one file of one domain gave.
struct MixRow {
  std::string domain, part;  ///< part: the file (a Megatron dataset's prefix)
  double weight = 0;         ///< the planned share of samples
  int64_t samples = 0;
};

/// A file the job produced, with its integrity hash.
struct ArtifactRow {
  std::string path;  ///< absolute
  std::string kind;  ///< "checkpoint", "tokenizer", "shard", "manifest", ...
  std::string sha256;
  int64_t bytes = 0;
};

struct JobResult {
  std::string status = "done";
  std::string key;
  std::map<std::string, std::string> outputs;  ///< named outputs, e.g. {"checkpoint": "/abs/dir"}
  std::vector<EvalRow> evals;
  std::vector<ArtifactRow> artifacts;
  std::vector<MixRow> mix;  ///< train jobs
  double wall_s = 0;
  std::string host;
  std::string device;
  std::string torch_version;
  CodeVersion code;  ///< the code that computed it ("code" in result.json; absent in older results)
};

/// A measurement a job reported among its outputs (tokens_per_s, device_seconds, ...): the whole
/// string a finite number greater than zero. nullopt when absent or anything else; callers that
/// need it say which of the two (`r.outputs.count(name)`).
std::optional<double> positive_output(const JobResult& r, const std::string& name);

/// Throws upcycle::Error when a value is NaN or infinite (JSON cannot hold it).
nlohmann::json to_json(const JobResult& r);
/// Throws upcycle::Error naming `origin` when a field is missing or has the wrong type.
JobResult job_result_from_json(const nlohmann::json& j, const std::string& origin);

/// Writes DIR/result.json atomically.
void write_job_result(const std::string& dir, const JobResult& r);
/// Reads DIR/result.json; nullopt when absent. Throws upcycle::Error when present but corrupt.
std::optional<JobResult> read_job_result(const std::string& dir);

/// Parses JSON text, throwing upcycle::Error "ORIGIN:LINE:COL: invalid JSON: why" in our words.
nlohmann::json parse_json(const std::string& text, const std::string& origin);

/// Parses a regular JSON file of at most `max_bytes` (core::read_file), errors as parse_json's.
nlohmann::json read_json_file(const std::string& path, int64_t max_bytes = int64_t(64) << 20);

}  // namespace upcycle::core
