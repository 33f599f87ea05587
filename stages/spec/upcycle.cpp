#include "stages/spec/upcycle.h"

#include <limits>

namespace upcycle::stages {
namespace {

using U = UpcycleSpec;
using M = ModelConfig;

// The routing fields an upcycle stage sets, under the recipe's names (model_fields() declares their
// types and ranges once).
core::Fields<M> make_attention_fields() {
  core::Fields<M> f;
  f.alias("routing", model_fields(), "attn_routing",
          "`soft`: every expert, softmax gate (BAM); `top_k`: Table 6 ablation")
      .alias("top_k", model_fields(), "attn_top_k",
             "attention experts per token when `routing: top_k`")
      .alias("kv", model_fields(), "attn_kv",
             "`expert`: own W_k, W_v; `shared`: one W_k, W_v for all experts");
  return f;
}

core::Fields<M> make_ffn_fields() {
  core::Fields<M> f;
  f.alias("top_k", model_fields(), "ffn_top_k", "FFN experts per token")
      .alias("routing", model_fields(), "ffn_routing", "`topk_then_softmax`: BTX, Mixtral")
      .alias("renormalize", model_fields(), "ffn_renormalize",
             "renormalise the kept probabilities to sum to 1")
      .alias("moe_every", model_fields(), "moe_every", "MoE FFN in every n-th layer")
      .alias("lb_coef", model_fields(), "lb_coef",
             "load-balancing loss coefficient α (BAM does not report it)")
      .alias("z_coef", model_fields(), "z_coef",
             "router z-loss coefficient β (BAM does not report it)");
  return f;
}

core::Fields<M> make_mixture_top_fields() {
  core::Fields<M> f;
  f.alias("experts", model_fields(), "ffn_experts",
          "sparse: E, the expansion rate; the MoE has E·G experts (required)")
      .alias("granularity", model_fields(), "ffn_granularity",
             "sparse: G; each expert is 1/G of the dense FFN (a shard of its hidden units)")
      .alias("router_init_std", model_fields(), "router_init_std",
             "routers are new, drawn from N(0, std²) (BAM does not give the distribution)");
  return f;
}

const core::Fields<M>& attention_fields() {
  static const core::Fields<M> kFields = make_attention_fields();
  return kFields;
}
const core::Fields<M>& ffn_fields() {
  static const core::Fields<M> kFields = make_ffn_fields();
  return kFields;
}
const core::Fields<M>& mixture_top_fields() {
  static const core::Fields<M> kFields = make_mixture_top_fields();
  return kFields;
}

// What the recipe and the job spec share.
core::Fields<U> common_fields() {
  core::Fields<U> f;
  f.choice("method", &U::method, kUpcycleMethodNames, "the upcycling method; required")
      .one_of(
          "shared_kv_init", &U::shared_kv_init, {"average", "first"},
          "`attention.kv: shared`: K/V from the average of the dense models, or `first` (the seed)")
      .numbers("average_weights", &U::average_weights,
               "bam/btx: weights of the averaged tensors, one per dense model; empty = uniform")
      .integer("extra_seed_experts", &U::extra_seed_experts, {0, 4096},
               "btx: extra FFN experts copied from the seed, to match parameters (BAM Tables 4-5)")
      .boolean("virtual_groups", &U::virtual_groups,
               "sparse: NVIDIA's virtual-group router init (experts holding one full set of shards "
               "share a router row)")
      .one_of("weight_scaling", &U::weight_scaling, {"all", "w2", "none"},
              "sparse: `all` multiplies W1, W3, W2 by scale^(1/3) (Megatron-LM, the NVIDIA paper); "
              "`w2` multiplies "
              "W2 by scale (exact at step 0 under uniform routing); `none` (Komatsuzaki). scale = "
              "E·G²/T for "
              "softmax_then_topk, G for topk_then_softmax");
  return f;
}

core::Fields<UpcycleJobSpec> make_job_fields() {
  using core::kNotKeyed;
  using core::kPlanned;
  core::Fields<U> u = common_fields();
  u.planned("inputs", &U::inputs, "the dense checkpoints, expert i from inputs[i]",
            kPlanned | kNotKeyed)
      .group("mixture", &U::mixture, model_fields(), kPlanned)
      .integer("seed", &U::seed, {0, std::numeric_limits<int64_t>::max()}, "the recipe's seed",
               kPlanned);
  core::Fields<UpcycleJobSpec> f;
  f.inherit(u);
  return f;
}

core::Fields<U> make_recipe_fields() {
  core::Fields<U> f = common_fields();
  f.group("attention", &U::mixture, attention_fields())
      .group("ffn", &U::mixture, ffn_fields())
      .lift(&U::mixture, mixture_top_fields());
  return f;
}

}  // namespace

const core::Fields<UpcycleJobSpec>& upcycle_job_fields() {
  static const core::Fields<UpcycleJobSpec> kFields = make_job_fields();
  return kFields;
}

const core::Fields<UpcycleSpec>& upcycle_recipe_fields() {
  static const core::Fields<UpcycleSpec> kFields = make_recipe_fields();
  return kFields;
}

void validate(const UpcycleJobSpec& s) {
  upcycle_job_fields().check(s);
  check(!s.inputs.empty() && s.inputs.size() <= 4096, "inputs",
        "needs 1 to 4096 dense checkpoints");
  check(s.method != UpcycleMethod::kSparse || s.inputs.size() == 1, "inputs",
        "sparse upcycling reads one dense model");
  check(s.extra_seed_experts == 0 || s.method == UpcycleMethod::kBtx, "extra_seed_experts",
        "is for method btx only");
  if (s.average_weights.empty()) return;
  check(s.average_weights.size() == s.inputs.size(), "average_weights",
        "has " + std::to_string(s.average_weights.size()) + " weights for " +
            std::to_string(s.inputs.size()) + " dense models");
  double total = 0;
  for (double w : s.average_weights) {
    check(w >= 0 && w < 1e9, "average_weights", "every weight must be in [0, 1e9)");
    total += w;
  }
  check(total > 0, "average_weights", "the weights sum to 0; give at least one positive weight");
}

nlohmann::json to_json(const UpcycleJobSpec& s) { return upcycle_job_fields().to_json(s); }

void read_spec(const SpecReader& r, UpcycleJobSpec& u) {
  upcycle_job_fields().read(r, u, false, envelope_fields());
  for (const char* required : {"method", "inputs"}) check(r.has(required), required, "missing");
  validate(u);
}

// The checkpoints are the input jobs, whose keys are in this key; copies and averages are the same
// on any device and thread count.
nlohmann::json key_material(const UpcycleJobSpec& s, const JobRuntime&) {
  return upcycle_job_fields().key_material(s);
}

}  // namespace upcycle::stages
