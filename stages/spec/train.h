// The train job's spec (kind "train"; branch stages plan train jobs too): what to train, on which
// mixture, for how many tokens, with which settings. The trainer's TrainSpec (train/trainer.h) is
// this plus what only a running process has (its directory, its process group, its placement).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "stages/arch/config.h"
#include "stages/spec/job_spec.h"

namespace upcycle::stages {

struct OptimSpec {
  double lr = 1e-3;
  double min_lr_ratio = 0.1;  ///< the cosine schedule ends at lr * min_lr_ratio
  int64_t warmup = 0;         ///< optimizer steps
  double weight_decay = 0.1;
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double grad_clip = 1.0;  ///< max global grad norm; 0 disables
};

/// The settings a recipe's `train:` section and each training stage set. Defaults live here only.
struct TrainSettings {
  int64_t batch_size = 8;          ///< sequences per optimizer step (global)
  int64_t micro_batch = 0;         ///< sequences per forward; 0 = batch_size (no accumulation)
  std::string precision = "auto";  ///< auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
  int64_t log_every = 10;
  int64_t eval_every = 0;        ///< validation every N steps; 0 = only at the end
  int64_t eval_windows = 8;      ///< validation windows per domain
  int64_t checkpoint_every = 0;  ///< 0 = only at the end
  /// Data-parallel layout of gradients and AdamW state (stages/train/optimizer.h): 0 replicated,
  /// 1 ZeRO-1 (moments sharded), 2 ZeRO-2 (gradients too). Not in the key: the numbers are the
  /// same to rounding, as with the world size.
  int64_t zero = 0;
  /// Activations recomputed in backward (stages/model/recompute.h); not in the key (bit-equal
  /// loss).
  Recompute checkpoint_activations = Recompute::kNone;
  /// Tokens per chunk of the fused output head + loss (stages/model/lm_head_loss.h); 0 = sized
  /// from the vocabulary. Not in the key (equal to rounding).
  int64_t loss_chunk_tokens = 0;
  /// Whether the last checkpoint keeps the AdamW state; not in the key (the weights are the same).
  bool final_optimizer_state = true;
  OptimSpec optim;
};

struct TrainJobSpec : TrainSettings {
  static constexpr const char* kKind = "train";
  /// Bump with any change to what train jobs produce (trainer, model, sampling, checkpoint format).
  /// 2: sharded checkpoints (format 2); bf16 weights with fp32 masters under bf16 and ZeRO.
  /// 3: each sample drawn from (seed, samples consumed), blends of files within a domain.
  static constexpr int kOutputVersion = 3;

  ModelConfig model;            ///< fresh initialisation when init_checkpoint is empty
  std::string init_checkpoint;  ///< continue from these weights (path; follows from an input key)
  std::string data_dir;         ///< the prepare job's data (path)
  std::map<std::string, double> mix;  ///< domain -> weight
  int64_t tokens = 0;                 ///< steps = ceil(tokens / (batch_size * seq_len))
  /// budget.by time (paths, given together; tokens is then 0): the budget is the device-seconds
  /// of the train job in match_seconds_of x the tokens per device-second of the one in
  /// match_rate_of, read from their results when this job starts (time_matched_tokens).
  std::string match_seconds_of;
  std::string match_rate_of;
  uint64_t seed = 0;
};

/// Throws core::FieldError naming the field ("optim.beta1: must be in [0, 1)").
void validate(const TrainSettings& s);
void validate(const TrainJobSpec& s);

/// Precision as it runs: auto resolves to bf16 on CUDA, fp32 on the CPU.
std::string effective_precision(const std::string& precision, const std::string& device);

/// The fields, declared once (core/fields.h): the recipe's training keys (a `train:` section and
/// every train and branch stage), their ranges and docs; the job's JSON adds what the planner sets.
const core::Fields<OptimSpec>& optim_fields();
const core::Fields<TrainSettings>& train_settings_fields();
const core::Fields<TrainJobSpec>& train_job_fields();

/// Reads the training keys present in `src` (a recipe's `train:` or a stage; the caller checks for
/// unknown keys, which sit beside a stage's own) over `out`, and validates them.
void read_settings(const core::FieldSource& src, TrainSettings& out);

nlohmann::json to_json(const TrainJobSpec& s);
/// Reads and validates; throws core::FieldError naming the field.
void read_spec(const SpecReader& r, TrainJobSpec& out);
nlohmann::json key_material(const TrainJobSpec& s, const JobRuntime& rt);

}  // namespace upcycle::stages
