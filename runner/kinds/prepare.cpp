// The recipe side of `prepare`: the recipe's data: section as one job (stages/spec/prepare.h).
#include "runner/kinds/stage_kind.h"
#include "runner/planner.h"
#include "stages/spec/prepare.h"

namespace upcycle::runner {
namespace {

struct PrepareStage : StageParams {};

class PrepareKind : public StageKind {
 public:
  std::string name() const override { return "prepare"; }
  std::vector<std::string> keys() const override { return {}; }
  bool provides_data() const override { return true; }

  std::shared_ptr<const StageParams> parse(const YamlReader&, const Recipe&) const override {
    return std::make_shared<PrepareStage>();
  }
  std::vector<StageInput> inputs(const StageDef&) const override { return {}; }

  void plan(const StageDef& s, Planner& p) const override {
    stages::PrepareJobSpec spec = p.recipe().data;
    spec.seed = p.recipe().data_seed.value_or(p.recipe().seed);
    spec.tokenizer.seed = spec.seed;
    p.set_data_job(p.add(s, s.name, draft(spec, p.runtime(s)), {}));
  }
};

}  // namespace

const StageKind& prepare_kind() {
  static const PrepareKind kKind;
  return kKind;
}

}  // namespace upcycle::runner
