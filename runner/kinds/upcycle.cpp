// The recipe side of `upcycle`: dense models -> one MoE (BAM, BTX or sparse upcycling), one job.
#include <algorithm>

#include "runner/kinds/stage_kind.h"
#include "runner/kinds/train.h"
#include "runner/planner.h"
#include "stages/arch/upcycle_config.h"
#include "stages/spec/upcycle.h"

namespace upcycle::runner {
namespace {

struct UpcycleStage : StageParams {
  std::vector<std::string> from;
  bool include_seed = true;  ///< bam/btx: prepend a branch's seed if `from` omits it
  stages::UpcycleSpec spec;  ///< method, routing (mixture) and surgery options; inputs are planned
};

// Keys of one method are refused for the others (their fields are read by the table).
void check_method_keys(stages::UpcycleMethod method, const YamlReader& r) {
  if (method == stages::UpcycleMethod::kSparse) {
    r.child("experts");  // required
  } else {
    for (const char* k : {"experts", "granularity", "virtual_groups", "weight_scaling"}) {
      if (r.has(k)) throw r.child(k).error("is for method sparse only");
    }
  }
  if (method != stages::UpcycleMethod::kBtx && r.has("extra_seed_experts")) {
    throw r.child("extra_seed_experts").error("is for method btx only");
  }
}

class UpcycleKind : public StageKind {
 public:
  std::string name() const override { return "upcycle"; }
  std::vector<std::string> keys() const override {
    std::vector<std::string> keys = stages::upcycle_recipe_fields().names(/*recipe=*/true);
    keys.insert(keys.end(), {"from", "include_seed"});
    return keys;
  }
  bool produces_models() const override { return true; }

  std::shared_ptr<const StageParams> parse(const YamlReader& r, const Recipe&) const override {
    auto u = std::make_shared<UpcycleStage>();
    u->from = r.child("from").strings();
    u->include_seed = r.get_bool("include_seed", u->include_seed);
    r.child("method");  // required
    stages::upcycle_recipe_fields().read_present(YamlSource(r), u->spec);
    check_method_keys(u->spec.method, r);
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
        if (!p.job(id).model.is_dense())
          throw stage_error(s, "from", "'" + p.job(id).stage + "' is not a dense model");
        inputs.push_back(id);
      }
    }
    const int64_t n = static_cast<int64_t>(inputs.size());
    if (n == 0) throw stage_error(s, "from", "list at least one dense model");
    for (size_t in :
         inputs) {  // where the recipe gives the shapes (imports, other seeds), check them now
      if (const std::string why = stages::expert_mismatch(p.job(inputs[0]).model, p.job(in).model);
          !why.empty()) {
        throw stage_error(s, "from",
                          "'" + p.job(inputs[0]).stage + "' and '" + p.job(in).stage +
                              "' cannot be experts of one model: they differ in " + why);
      }
    }
    if (u.spec.method == stages::UpcycleMethod::kSparse && n != 1) {
      throw stage_error(s, "from",
                        "sparse upcycling reads one dense model, got " + std::to_string(n));
    }
    stages::UpcycleJobSpec spec;
    static_cast<stages::UpcycleSpec&>(spec) = u.spec;
    spec.seed = p.recipe().seed;
    for (size_t in : inputs) spec.inputs.push_back(p.job(in).dir + "/checkpoint");
    stages::ModelConfig moe;
    try {
      moe = stages::upcycled_config(spec.method, p.job(inputs[0]).model, spec.mixture,
                                    n + spec.extra_seed_experts);
    } catch (const core::FieldError& e) {
      throw stage_error(
          s, "", std::string(e.what()) + " (upcycling " + std::to_string(n) + " dense models)");
    }
    size_t id = p.add(s, s.name, draft(spec, p.runtime(s)), inputs);
    PlannedJob& j = p.job(id);
    j.produces_model = true;
    j.model = moe;
    j.detail = "experts attn " + std::to_string(moe.attn_experts) + " ffn " +
               std::to_string(moe.ffn_experts);
  }

 private:
  // BAM and BTX mix the seed in as one of the experts by default: a branch's seed joins `from`.
  static std::vector<std::string> with_seed(const UpcycleStage& u, const Recipe& r) {
    std::vector<std::string> from = u.from;
    if (!u.include_seed || u.spec.method == stages::UpcycleMethod::kSparse) return from;
    for (const auto& f : u.from) {
      const StageDef* b = r.find_stage(f);
      const BranchStage* branch = b ? b->as<BranchStage>() : nullptr;
      if (branch && !branch->from.empty() &&
          std::find(from.begin(), from.end(), branch->from.at(0)) == from.end()) {
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
