// The recipe side of `upcycle`: dense models -> one MoE (BAM, BTX or sparse upcycling), one job.
#include <algorithm>

#include "runner/kinds/stage_kind.h"
#include "runner/kinds/train.h"
#include "runner/planner.h"
#include "stages/spec/upcycle.h"
#include "stages/arch/upcycle_config.h"

namespace upcycle::runner {
namespace {

struct UpcycleStage : StageParams {
  std::vector<std::string> from;
  bool include_seed = true;    ///< bam/btx: prepend a branch's seed if `from` omits it
  stages::UpcycleSpec spec;    ///< method, routing (mixture) and surgery options; inputs are planned
};

// Routing keys into a ModelConfig's mixture fields; method-specific keys are refused elsewhere.
stages::ModelConfig parse_mixture(stages::UpcycleMethod method, const YamlReader& r) {
  stages::ModelConfig m;
  if (method == stages::UpcycleMethod::kSparse) {
    m.ffn_experts = r.child("experts").integer();
    m.ffn_granularity = r.get_integer("granularity", 1);
    if (m.ffn_experts < 1) throw r.child("experts").error("must be >= 1");
    if (m.ffn_granularity < 1) throw r.child("granularity").error("must be >= 1");
  } else {
    for (const char* k : {"experts", "granularity", "virtual_groups", "weight_scaling"}) {
      if (r.has(k)) throw r.child(k).error("is for method sparse only");
    }
  }
  if (method != stages::UpcycleMethod::kBtx && r.has("extra_seed_experts")) throw r.child("extra_seed_experts").error("is for method btx only");
  if (r.has("attention")) {
    YamlReader a = r.child("attention");
    a.expect_map({"routing", "top_k", "kv"});
    m.attn_routing = choice(a, "routing", stages::kAttnRoutingNames, m.attn_routing);
    m.attn_top_k = a.get_integer("top_k", m.attn_top_k);
    m.attn_kv = choice(a, "kv", stages::kKvModeNames, m.attn_kv);
  }
  if (r.has("ffn")) {
    YamlReader f = r.child("ffn");
    f.expect_map({"top_k", "routing", "renormalize", "moe_every", "lb_coef", "z_coef"});
    m.ffn_top_k = f.get_integer("top_k", m.ffn_top_k);
    m.ffn_routing = choice(f, "routing", stages::kFfnRoutingNames, m.ffn_routing);
    m.ffn_renormalize = f.get_bool("renormalize", m.ffn_renormalize);
    m.moe_every = f.get_integer("moe_every", m.moe_every);
    m.lb_coef = f.get_number("lb_coef", m.lb_coef);
    m.z_coef = f.get_number("z_coef", m.z_coef);
  }
  m.router_init_std = r.get_number("router_init_std", m.router_init_std);
  return m;
}

class UpcycleKind : public StageKind {
 public:
  std::string name() const override { return "upcycle"; }
  std::vector<std::string> keys() const override {
    return {"from", "method", "attention", "ffn", "experts", "granularity", "virtual_groups", "weight_scaling",
            "extra_seed_experts", "include_seed", "average_weights", "router_init_std", "shared_kv_init"};
  }
  bool produces_models() const override { return true; }

  std::shared_ptr<const StageParams> parse(const YamlReader& r, const Recipe&) const override {
    auto u = std::make_shared<UpcycleStage>();
    stages::UpcycleSpec& s = u->spec;
    u->from = r.child("from").strings();
    s.method = choice(r, "method", stages::kUpcycleMethodNames, s.method, /*required=*/true);
    s.mixture = parse_mixture(s.method, r);
    s.shared_kv_init = r.get_choice("shared_kv_init", s.shared_kv_init, {"average", "first"});
    u->include_seed = r.get_bool("include_seed", u->include_seed);
    s.extra_seed_experts = r.get_integer("extra_seed_experts", 0);
    if (s.extra_seed_experts < 0) throw r.child("extra_seed_experts").error("must be >= 0");
    s.virtual_groups = r.get_bool("virtual_groups", s.virtual_groups);
    s.weight_scaling = r.get_choice("weight_scaling", s.weight_scaling, {"all", "w2", "none"});
    if (r.has("average_weights")) {
      YamlReader aw = r.child("average_weights");
      if (!aw.is_sequence()) throw aw.error("expected a list of numbers, one per dense model");
      for (size_t i = 0; i < aw.size(); ++i) s.average_weights.push_back(aw.at(i).number());
    }
    return u;
  }

  std::vector<StageInput> inputs(const StageDef& s) const override {
    std::vector<StageInput> in;
    for (const auto& f : s.as<UpcycleStage>()->from) in.push_back({"from", f});
    return in;
  }

  void plan(const StageDef& s, Planner& p) const override {
    const auto& u = *s.as<UpcycleStage>();
    std::vector<size_t> inputs;
    for (const auto& f : with_seed(u, p.recipe())) {
      for (size_t id : p.models_of(s, "from", f)) {
        if (!p.job(id).model.is_dense()) throw stage_error(s, "from", "'" + p.job(id).stage + "' is not a dense model");
        inputs.push_back(id);
      }
    }
    const int64_t n = static_cast<int64_t>(inputs.size());
    if (n == 0) throw stage_error(s, "from", "list at least one dense model");
    for (size_t in : inputs) {  // where the recipe gives the shapes (imports, other seeds), check them now
      if (const std::string why = stages::expert_mismatch(p.job(inputs[0]).model, p.job(in).model); !why.empty()) {
        throw stage_error(s, "from", "'" + p.job(inputs[0]).stage + "' and '" + p.job(in).stage +
                                         "' cannot be experts of one model: they differ in " + why);
      }
    }
    if (u.spec.method == stages::UpcycleMethod::kSparse && n != 1) {
      throw stage_error(s, "from", "sparse upcycling reads one dense model, got " + std::to_string(n));
    }
    stages::UpcycleJobSpec spec;
    static_cast<stages::UpcycleSpec&>(spec) = u.spec;
    spec.seed = p.recipe().seed;
    for (size_t in : inputs) spec.inputs.push_back(p.job(in).dir + "/checkpoint");
    stages::ModelConfig moe;
    try {
      moe = stages::upcycled_config(spec.method, p.job(inputs[0]).model, spec.mixture, n + spec.extra_seed_experts);
    } catch (const core::FieldError& e) {
      throw stage_error(s, "", std::string(e.what()) + " (upcycling " + std::to_string(n) + " dense models)");
    }
    size_t id = p.add(s, s.name, draft(spec, p.runtime(s)), inputs);
    PlannedJob& j = p.job(id);
    j.produces_model = true;
    j.model = moe;
    j.detail = "experts attn " + std::to_string(moe.attn_experts) + " ffn " + std::to_string(moe.ffn_experts);
  }

 private:
  // BAM and BTX mix the seed in as one of the experts by default: a branch's seed joins `from`.
  static std::vector<std::string> with_seed(const UpcycleStage& u, const Recipe& r) {
    std::vector<std::string> from = u.from;
    if (!u.include_seed || u.spec.method == stages::UpcycleMethod::kSparse) return from;
    for (const auto& f : u.from) {
      const StageDef* b = r.find_stage(f);
      const BranchStage* branch = b ? b->as<BranchStage>() : nullptr;
      if (branch && !branch->from.empty() && std::find(from.begin(), from.end(), branch->from.at(0)) == from.end()) {
        from.insert(from.begin(), branch->from[0]);
      }
    }
    return from;
  }
};

}  // namespace

const StageKind& upcycle_kind() {
  static const UpcycleKind kKind;
  return kKind;
}

}  // namespace upcycle::runner
