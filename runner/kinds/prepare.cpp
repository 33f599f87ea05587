// The recipe side of `prepare`: the recipe's data: section as one job (stages/spec/prepare.h).
#include "stages/spec/prepare.h"
#include "core/sha256.h"
#include "runner/kinds/stage_kind.h"
#include "runner/planner.h"

namespace upcycle::runner {
namespace {

struct PrepareStage : StageParams {};

// A stage whose models bring a tokenizer (an import) decides the data's: every such stage must
// bring the same one, and the recipe's data.tokenizer settings give way to it.
void use_models_tokenizer(const StageDef& s, const Recipe& r, stages::PrepareJobSpec& spec) {
  std::string from;
  for (const auto& st : r.stages) {
    const std::string file = st.kind->tokenizer(st);
    if (file.empty()) continue;
    const std::string sha = core::sha256_file(file);
    if (!spec.tokenizer_file.empty() && sha != spec.tokenizer_sha256) {
      throw stage_error(s, "kind",
                        "stages '" + from + "' and '" + st.name +
                            "' bring different tokenizers; "
                            "their models cannot share one tokenized dataset");
    }
    if (spec.pretokenized) {
      throw stage_error(
          s, "kind", "stage '" + st.name + "' brings its tokenizer, but the data is pre-tokenized");
    }
    spec.tokenizer_file = file;
    spec.tokenizer_sha256 = sha;
    from = st.name;
  }
}

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
    use_models_tokenizer(s, p.recipe(), spec);
    p.set_data_job(p.add(s, s.name, draft(spec, p.runtime(s)), {}));
  }
};

}  // namespace

const StageKind& prepare_kind() {
  static const PrepareKind kKind;
  return kKind;
}

}  // namespace upcycle::runner
