#include "stages/spec/upcycle.h"

namespace upcycle::stages {

void validate(const UpcycleJobSpec& s) {
  check(!s.inputs.empty() && s.inputs.size() <= 4096, "inputs", "needs 1 to 4096 dense checkpoints");
  check(s.method != UpcycleMethod::kSparse || s.inputs.size() == 1, "inputs", "sparse upcycling reads one dense model");
  check_choice(s.shared_kv_init, "shared_kv_init", {"average", "first"});
  check_choice(s.weight_scaling, "weight_scaling", {"all", "w2", "none"});
  check(s.extra_seed_experts >= 0 && s.extra_seed_experts <= 4096, "extra_seed_experts", "must be in [0, 4096]");
  check(s.extra_seed_experts == 0 || s.method == UpcycleMethod::kBtx, "extra_seed_experts", "is for method btx only");
  if (s.average_weights.empty()) return;
  check(s.average_weights.size() == s.inputs.size(), "average_weights",
        "has " + std::to_string(s.average_weights.size()) + " weights for " + std::to_string(s.inputs.size()) +
            " dense models");
  double total = 0;
  for (double w : s.average_weights) {
    check(w >= 0 && w < 1e9, "average_weights", "every weight must be in [0, 1e9)");
    total += w;
  }
  check(total > 0, "average_weights", "the weights sum to 0; give at least one positive weight");
}

nlohmann::json to_json(const UpcycleJobSpec& s) {
  return {{"method", core::enum_name(kUpcycleMethodNames, s.method)}, {"inputs", s.inputs}, {"mixture", to_json(s.mixture)},
          {"shared_kv_init", s.shared_kv_init}, {"average_weights", s.average_weights},
          {"extra_seed_experts", s.extra_seed_experts}, {"virtual_groups", s.virtual_groups},
          {"weight_scaling", s.weight_scaling}, {"seed", s.seed}};
}

void read_spec(const SpecReader& r, UpcycleJobSpec& u) {
  expect_fields(r, {"method", "inputs", "mixture", "shared_kv_init", "average_weights", "extra_seed_experts",
                    "virtual_groups", "weight_scaling", "seed"});
  u.method = core::enum_from(kUpcycleMethodNames, r.value<std::string>("method"), r.path("method"));
  u.inputs = r.value<std::vector<std::string>>("inputs");
  if (r.has("mixture")) {
    r.object("mixture");  // an object
    try {
      u.mixture = model_config_from_json(r.json().at("mixture"));
    } catch (const std::exception& e) {
      throw core::FieldError("mixture", e.what());
    }
  }
  u.shared_kv_init = r.value("shared_kv_init", u.shared_kv_init);
  u.average_weights = r.value("average_weights", u.average_weights);
  u.extra_seed_experts = r.value("extra_seed_experts", u.extra_seed_experts);
  u.virtual_groups = r.value("virtual_groups", u.virtual_groups);
  u.weight_scaling = r.value("weight_scaling", u.weight_scaling);
  u.seed = r.value<uint64_t>("seed", 0);
  validate(u);
}

nlohmann::json key_material(const UpcycleJobSpec& s, const JobRuntime&) {
  nlohmann::json j = to_json(s);
  j.erase("inputs");  // the checkpoints are the input jobs, whose keys are in this key
  return j;           // copies and averages: the same on any device and thread count
}

}  // namespace upcycle::stages
