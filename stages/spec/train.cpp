#include "stages/spec/train.h"

#include <algorithm>
#include <limits>

namespace upcycle::stages {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

core::Fields<OptimSpec> make_optim_fields() {
  using O = OptimSpec;
  core::Fields<O> f;
  f.number("lr", &O::lr, {0, 10, false, true}, "peak learning rate")
      .number("min_lr_ratio", &O::min_lr_ratio, {0, 1},
              "cosine floor as a fraction of the peak (BAM: 10%)")
      .integer("warmup", &O::warmup, {0, std::numeric_limits<int64_t>::max()},
               "linear warmup steps from 0")
      .number("weight_decay", &O::weight_decay, {0, 10, false, true},
              "AdamW decay on matrices (not norms)")
      .number("beta1", &O::beta1, {0, 1, false, true}, "AdamW β1")
      .number("beta2", &O::beta2, {0, 1, false, true}, "AdamW β2")
      .number("eps", &O::eps, {0, 1, true, true}, "AdamW ε")
      .number("grad_clip", &O::grad_clip, {0, kInf},
              "max global gradient norm; 0 disables clipping");
  return f;
}

core::Fields<TrainSettings> make_settings_fields() {
  using T = TrainSettings;
  constexpr int64_t kP24 = int64_t(1) << 24, kMaxSteps = std::numeric_limits<int64_t>::max();
  core::Fields<T> f;
  f.integer("batch_size", &T::batch_size, {1, kP24}, "sequences per optimizer step (global)")
      .integer("micro_batch", &T::micro_batch, {0, kP24},
               "sequences per forward; must divide `batch_size` (gradient accumulation); 0 = "
               "`batch_size`")
      .one_of("precision", &T::precision, {"auto", "fp32", "bf16"},
              "`auto`: bf16 autocast on CUDA, fp32 on the CPU; `bf16`: autocast (matmuls in bf16; "
              "norms, softmax "
              "and losses in fp32; weights, gradients and AdamW state stay fp32). Eval stages have "
              "their own")
      .integer("log_every", &T::log_every, {1, kMaxSteps}, "steps between `metrics.jsonl` lines")
      .integer("eval_every", &T::eval_every, {0, kMaxSteps},
               "steps between validation losses; 0 = only at the end")
      .integer("eval_windows", &T::eval_windows, {1, kMaxSteps},
               "validation windows per domain and evaluation")
      .integer("checkpoint_every", &T::checkpoint_every, {0, kMaxSteps},
               "steps between checkpoints; 0 = only at the end")
      .integer("zero", &T::zero, {0, 2},
               "data-parallel optimizer layout: `0` every rank holds all gradients and AdamW "
               "moments; `1` ZeRO-1, each rank holds the moments of its 1/d share; `2` ZeRO-2, "
               "and only its share of the gradients (docs/scale.md)",
               core::kNotKeyed)
      .choice("checkpoint_activations", &T::checkpoint_activations, kRecomputeNames,
              "recompute activations in backward: `none`; `block`: keep each block's input "
              "only; `selective`: recompute each block's FFN (docs/scale.md)",
              core::kNotKeyed)
      .integer("loss_chunk_tokens", &T::loss_chunk_tokens, {0, kP24},
               "tokens per chunk of the fused output head and loss, so full-vocabulary logits "
               "never exist for a whole micro-batch; 0 = the most whose fp32 logits fit 256 MiB",
               core::kNotKeyed)
      .boolean("final_optimizer_state", &T::final_optimizer_state,
               "the final checkpoint keeps the AdamW state (8 to 12 bytes per parameter on disk); "
               "`false`: the weights alone, all that later stages read (the rehearsal's default). "
               "Checkpoints before the last always keep it, to resume",
               core::kNotKeyed)
      .group("optim", &T::optim, optim_fields());
  return f;
}

core::Fields<TrainJobSpec> make_job_fields() {
  using J = TrainJobSpec;
  using core::kNotKeyed;
  using core::kPlanned;
  core::Fields<J> f;
  f.inherit(train_settings_fields())
      .text("data_dir", &J::data_dir, "the prepare job's data (path)", kPlanned | kNotKeyed)
      .planned("mix", &J::mix, "domain -> weight")
      .integer("tokens", &J::tokens, {0, int64_t(1) << 62},
               "the token budget (0: measured at the start, budget.by time)", kPlanned)
      .text("match_seconds_of", &J::match_seconds_of,
            "budget.by time: the train job whose device-seconds to match (path)",
            kPlanned | kNotKeyed)
      .text("match_rate_of", &J::match_rate_of,
            "budget.by time: the train job whose tokens per device-second to use (path)",
            kPlanned | kNotKeyed)
      .integer("seed", &J::seed, {0, std::numeric_limits<int64_t>::max()}, "the recipe's seed",
               kPlanned);
  return f;
}

// ModelConfig::validate names the model's own key.
void validate_model(const ModelConfig& m) {
  try {
    m.validate();
  } catch (const core::FieldError& e) {
    throw core::FieldError("model." + e.path(), e.reason());
  }
}

}  // namespace

const core::Fields<OptimSpec>& optim_fields() {
  static const core::Fields<OptimSpec> kFields = make_optim_fields();
  return kFields;
}

const core::Fields<TrainSettings>& train_settings_fields() {
  static const core::Fields<TrainSettings> kFields = make_settings_fields();
  return kFields;
}

const core::Fields<TrainJobSpec>& train_job_fields() {
  static const core::Fields<TrainJobSpec> kFields = make_job_fields();
  return kFields;
}

void validate(const TrainSettings& s) {
  train_settings_fields().check(s);
  check(s.micro_batch == 0 || s.batch_size % s.micro_batch == 0, "micro_batch",
        "must divide batch_size (0: no accumulation)");
}

void read_settings(const core::FieldSource& src, TrainSettings& out) {
  train_settings_fields().read_present(src, out);
  validate(out);
}

void validate(const TrainJobSpec& s) {
  train_job_fields().check(s);
  validate(static_cast<const TrainSettings&>(s));
  check(!s.data_dir.empty(), "data_dir", "missing");
  check(!s.mix.empty(), "mix", "needs at least one domain");
  double total = 0;
  for (const auto& [d, w] : s.mix) {
    check_name(d, "mix");  // a domain name becomes a shard file name
    check(w >= 0 && w < 1e9, "mix." + d, "weight must be in [0, 1e9)");
    total += w;
  }
  check(total > 0, "mix", "weights sum to 0");
  check(s.match_seconds_of.empty() == s.match_rate_of.empty(), "match_rate_of",
        "given with match_seconds_of, or neither");
  check((s.tokens == 0) == !s.match_seconds_of.empty(), "tokens",
        s.tokens == 0 ? "must be >= 1 (0 only with match_seconds_of: budget.by time)"
                      : "must be 0 when the budget is matched by time");
  if (s.init_checkpoint.empty()) validate_model(s.model);
}

std::string effective_precision(const std::string& precision, const std::string& device) {
  if (precision != "auto") return precision;
  return device == "cpu" ? "fp32" : "bf16";
}

// The JSON form: the settings' and the job's fields, then the model as a fresh config or the
// checkpoint it continues (init).
nlohmann::json to_json(const TrainJobSpec& s) {
  nlohmann::json j = train_job_fields().to_json(s);
  if (s.init_checkpoint.empty()) {
    j["model"] = to_json(s.model);
  } else {
    j["init"] = s.init_checkpoint;
  }
  return j;
}

void read_spec(const SpecReader& r, TrainJobSpec& t) {
  std::vector<std::string> also = envelope_fields();
  also.insert(also.end(), {"model", "init"});
  train_job_fields().read(r, t, false, also);
  check(r.has("model") != r.has("init"), "model",
        "give exactly one of model (fresh) or init (a checkpoint)");
  if (r.has("model")) model_fields().read(r.object("model"), t.model);
  t.init_checkpoint = r.value<std::string>("init", "");
  for (const char* required : {"data_dir", "mix", "tokens"})
    check(r.has(required), required, "missing");
  validate(t);
}

nlohmann::json key_material(const TrainJobSpec& s, const JobRuntime& rt) {
  nlohmann::json j = train_job_fields().key_material(s);  // paths follow from input keys
  if (s.init_checkpoint.empty()) j["model"] = to_json(s.model);
  j["precision"] = effective_precision(s.precision, rt.device);
  j["numerics"] = numerics_of(rt);
  return j;
}

}  // namespace upcycle::stages
