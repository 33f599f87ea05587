// The upcycle job's spec (kind "upcycle"): which dense checkpoints become which experts, and how
// (upcycle/surgery.h describes each method). Torch-free; the surgery reads it as is.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "stages/arch/config.h"
#include "stages/arch/upcycle_config.h"
#include "stages/spec/job_spec.h"

namespace upcycle::stages {

struct UpcycleSpec {
  UpcycleMethod method = UpcycleMethod::kBam;
  std::vector<std::string>
      inputs;           ///< dense checkpoint dirs; expert i comes from inputs[i] (paths)
  ModelConfig mixture;  ///< routing fields (attn_*, ffn_*, router_init_std, coefs) to use
  std::string shared_kv_init = "average";  ///< average | first
  std::vector<double> average_weights;     ///< for averaged tensors; empty = uniform
  int64_t extra_seed_experts =
      0;  ///< btx: FFN experts copied from inputs[0] (the seed), BAM Tables 4-5
  bool virtual_groups = true;  ///< sparse: NVIDIA's virtual-group router initialisation
  /// sparse: "all" multiplies W1, W3 and W2 of every expert by scale^(1/3) (Megatron-LM, the
  /// paper); "w2" multiplies W2 alone by scale (exact at step 0 under uniform routing); "none".
  std::string weight_scaling = "all";
  uint64_t seed = 0;
};

struct UpcycleJobSpec : UpcycleSpec {
  static constexpr const char* kKind = "upcycle";
  /// Bump with any change to what upcycle jobs produce (surgery rules, router initialisation).
  static constexpr int kOutputVersion = 1;
};

/// The fields, declared once (core/fields.h). The job's JSON; and the recipe keys of an upcycle
/// stage (its routing keys, `attention.*`, `ffn.*`, `experts`, ..., are the mixture's fields under
/// the recipe's names), besides `from` and `include_seed`, which the planner reads.
const core::Fields<UpcycleJobSpec>& upcycle_job_fields();
const core::Fields<UpcycleSpec>& upcycle_recipe_fields();

/// Throws core::FieldError naming the field. average_weights: one per input, >= 0, not all 0.
void validate(const UpcycleJobSpec& s);
nlohmann::json to_json(const UpcycleJobSpec& s);
void read_spec(const SpecReader& r, UpcycleJobSpec& out);
nlohmann::json key_material(const UpcycleJobSpec& s, const JobRuntime& rt);

}  // namespace upcycle::stages
