#include "stages/spec/train.h"

namespace upcycle::stages {
namespace {

nlohmann::json optim_json(const OptimSpec& o) {
  return {{"lr", o.lr}, {"min_lr_ratio", o.min_lr_ratio}, {"warmup", o.warmup},
          {"weight_decay", o.weight_decay}, {"beta1", o.beta1}, {"beta2", o.beta2},
          {"eps", o.eps}, {"grad_clip", o.grad_clip}};
}

OptimSpec read_optim(const SpecReader& r) {
  r.expect_only({"lr", "min_lr_ratio", "warmup", "weight_decay", "beta1", "beta2", "eps", "grad_clip"});
  OptimSpec o;
  o.lr = r.get("lr", o.lr);
  o.min_lr_ratio = r.get("min_lr_ratio", o.min_lr_ratio);
  o.warmup = r.get("warmup", o.warmup);
  o.weight_decay = r.get("weight_decay", o.weight_decay);
  o.beta1 = r.get("beta1", o.beta1);
  o.beta2 = r.get("beta2", o.beta2);
  o.eps = r.get("eps", o.eps);
  o.grad_clip = r.get("grad_clip", o.grad_clip);
  return o;
}

void validate_optim(const OptimSpec& o) {
  check(o.lr >= 0 && o.lr < 10, "optim.lr", "must be in [0, 10)");
  check(o.min_lr_ratio >= 0 && o.min_lr_ratio <= 1, "optim.min_lr_ratio", "must be in [0, 1]");
  check(o.warmup >= 0, "optim.warmup", "must be >= 0");
  check(o.weight_decay >= 0 && o.weight_decay < 10, "optim.weight_decay", "must be in [0, 10)");
  check(o.beta1 >= 0 && o.beta1 < 1, "optim.beta1", "must be in [0, 1)");
  check(o.beta2 >= 0 && o.beta2 < 1, "optim.beta2", "must be in [0, 1)");
  check(o.eps > 0 && o.eps < 1, "optim.eps", "must be in (0, 1)");
  check(o.grad_clip >= 0, "optim.grad_clip", "must be >= 0 (0 disables clipping)");
}

// ModelConfig::validate says "key: reason".
void validate_model(const ModelConfig& m) {
  try {
    m.validate();
  } catch (const std::invalid_argument& e) {
    const std::string what = e.what();
    const size_t colon = what.find(": ");
    throw SpecError("model." + what.substr(0, colon), colon == std::string::npos ? what : what.substr(colon + 2));
  }
}

}  // namespace

void validate(const TrainSettings& s) {
  check(s.batch_size >= 1 && s.batch_size <= (int64_t(1) << 24), "batch_size", "must be in [1, 2^24]");
  check(s.micro_batch >= 0 && (s.micro_batch == 0 || s.batch_size % s.micro_batch == 0), "micro_batch",
        "must divide batch_size (0: no accumulation)");
  check_choice(s.precision, "precision", {"auto", "fp32", "bf16"});
  check(s.log_every >= 1, "log_every", "must be >= 1");
  check(s.eval_every >= 0, "eval_every", "must be >= 0 (0: only at the end)");
  check(s.eval_windows >= 1, "eval_windows", "must be >= 1");
  check(s.checkpoint_every >= 0, "checkpoint_every", "must be >= 0 (0: only at the end)");
  validate_optim(s.optim);
}

void validate(const TrainJobSpec& s) {
  validate(static_cast<const TrainSettings&>(s));
  check(s.tokens >= 1, "tokens", "must be >= 1");
  check(!s.data_dir.empty(), "data_dir", "missing");
  check(!s.mix.empty(), "mix", "needs at least one domain");
  double total = 0;
  for (const auto& [d, w] : s.mix) {
    check_name(d, "mix");  // a domain name becomes a shard file name
    check(w >= 0 && w < 1e9, "mix." + d, "weight must be in [0, 1e9)");
    total += w;
  }
  check(total > 0, "mix", "weights sum to 0");
  if (s.init_checkpoint.empty()) validate_model(s.model);
}

std::string effective_precision(const std::string& precision, const std::string& device) {
  if (precision != "auto") return precision;
  return device == "cpu" ? "fp32" : "bf16";
}

void write_settings(nlohmann::json& j, const TrainSettings& s) {
  j["batch_size"] = s.batch_size;
  j["micro_batch"] = s.micro_batch;
  j["precision"] = s.precision;
  j["log_every"] = s.log_every;
  j["eval_every"] = s.eval_every;
  j["eval_windows"] = s.eval_windows;
  j["checkpoint_every"] = s.checkpoint_every;
  j["optim"] = optim_json(s.optim);
}

nlohmann::json to_json(const TrainJobSpec& s) {
  nlohmann::json j = nlohmann::json::object();
  write_settings(j, s);
  if (s.init_checkpoint.empty()) {
    j["model"] = to_json(s.model);
  } else {
    j["init"] = s.init_checkpoint;
  }
  j["data_dir"] = s.data_dir;
  j["mix"] = s.mix;
  j["tokens"] = s.tokens;
  j["seed"] = s.seed;
  return j;
}

void read_spec(const SpecReader& r, TrainJobSpec& t) {
  expect_fields(r, {"batch_size", "micro_batch", "precision", "log_every", "eval_every", "eval_windows",
                    "checkpoint_every", "optim", "model", "init", "data_dir", "mix", "tokens", "seed"});
  t.batch_size = r.get("batch_size", t.batch_size);
  t.micro_batch = r.get("micro_batch", t.micro_batch);
  t.precision = r.get("precision", t.precision);
  t.log_every = r.get("log_every", t.log_every);
  t.eval_every = r.get("eval_every", t.eval_every);
  t.eval_windows = r.get("eval_windows", t.eval_windows);
  t.checkpoint_every = r.get("checkpoint_every", t.checkpoint_every);
  if (r.has("optim")) t.optim = read_optim(r.child("optim"));
  check(r.has("model") != r.has("init"), "model", "give exactly one of model (fresh) or init (a checkpoint)");
  if (r.has("model")) {
    try {
      t.model = model_config_from_json(r.json().at("model"));
    } catch (const std::exception& e) {
      throw SpecError("model", e.what());
    }
  }
  t.init_checkpoint = r.get<std::string>("init", "");
  t.data_dir = r.get<std::string>("data_dir");
  t.mix = r.get<std::map<std::string, double>>("mix");
  t.tokens = r.get<int64_t>("tokens");
  t.seed = r.get<uint64_t>("seed", 0);
  validate(t);
}

nlohmann::json key_material(const TrainJobSpec& s, const JobRuntime& rt) {
  nlohmann::json j = to_json(s);
  j.erase("init");  // paths follow from input keys
  j.erase("data_dir");
  j["precision"] = effective_precision(s.precision, rt.device);
  j["numerics"] = numerics_of(rt);
  return j;
}

}  // namespace upcycle::stages
