// The recipe side of `import`: a Hugging Face checkpoint directory as a model of the recipe (a
// seed, or a domain expert for upcycle's `from`), one job. Its tokenizer (tokenizer.model, or a
// byte-level BPE tokenizer.json) becomes the data's tokenizer.
#include <cstdlib>
#include <filesystem>

#include "core/sha256.h"
#include "runner/kinds/stage_kind.h"
#include "runner/planner.h"
#include "stages/arch/hf_config.h"
#include "stages/data/hf_tokenizer.h"
#include "stages/spec/import.h"

namespace upcycle::runner {
namespace {

struct ImportStage : StageParams {
  std::string path;       ///< absolute
  std::string tokenizer;  ///< its tokenizer.model, or tokenizer.json
  int64_t seq_len = 0;
  stages::ModelConfig model;
};

class ImportKind : public StageKind {
 public:
  std::string name() const override { return "import"; }
  std::vector<std::string> keys() const override {
    return stages::import_fields().names(/*recipe=*/true);
  }
  bool produces_models() const override { return true; }

  // The checkpoint is read here, so a missing tensor index, an unsupported architecture or a
  // tokenizer we cannot read is an error at the recipe's `path:` line before anything runs.
  std::shared_ptr<const StageParams> parse(const YamlReader& r, const Recipe&) const override {
    auto s = std::make_shared<ImportStage>();
    const YamlReader path = r.child("path");
    std::string given = path.str();
    const char* home = std::getenv("HOME");
    if (given.rfind("~/", 0) == 0 && home)
      given = std::string(home) + given.substr(1);  // as a shell would
    s->path = std::filesystem::absolute(given).lexically_normal().string();
    if (!std::filesystem::is_directory(s->path)) {
      throw path.error("'" + path.str() + "' is not a directory",
                       "a Hugging Face checkpoint directory (config.json, "
                       "*.safetensors, tokenizer.model or tokenizer.json)");
    }
    stages::ImportJobSpec fields;
    stages::import_fields().read_present(YamlSource(r), fields);
    s->seq_len = fields.seq_len;
    try {
      s->model = stages::read_hf_model(
                     s->path, s->seq_len > 0 ? std::optional<int64_t>(s->seq_len) : std::nullopt)
                     .model;
      s->tokenizer = stages::hf_tokenizer_file(s->path);
    } catch (const StageError& e) {
      throw path.error(e.what(), e.hint());
    }
    return s;
  }

  std::vector<StageInput> inputs(const StageDef&) const override { return {}; }

  std::string tokenizer(const StageDef& s) const override { return s.as<ImportStage>()->tokenizer; }

  void plan(const StageDef& s, Planner& p) const override {
    const auto& in = *s.as<ImportStage>();
    stages::ImportJobSpec spec;
    spec.path = in.path;
    spec.seq_len = in.seq_len;
    try {
      spec.fingerprint = stages::hf_checkpoint_fingerprint(in.path);
    } catch (const StageError& e) {
      throw stage_error(s, "path", e.what());
    }
    size_t id = p.add(s, s.name, draft(spec, p.runtime(s)), {});
    PlannedJob& j = p.job(id);
    j.produces_model = true;
    j.model = in.model;
    j.detail = "import " + in.path;
  }
};

}  // namespace

const StageKind& import_kind() {
  static const ImportKind kKind;
  return kKind;
}

}  // namespace upcycle::runner
