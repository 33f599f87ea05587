#include "runner/key_docs.h"

#include "core/error.h"
#include "core/fields.h"
#include "stages/arch/config.h"
#include "stages/spec/eval.h"
#include "stages/spec/import.h"
#include "stages/spec/train.h"
#include "stages/spec/upcycle.h"

namespace upcycle::runner {

const std::vector<std::string>& key_doc_sections() {
  static const std::vector<std::string> kSections = {"model", "train", "upcycle", "eval", "import"};
  return kSections;
}

std::string key_docs(const std::string& section) {
  if (section == "model") return core::docs_table(stages::model_fields().docs());
  if (section == "train") return core::docs_table(stages::train_settings_fields().docs());
  if (section == "upcycle") return core::docs_table(stages::upcycle_recipe_fields().docs());
  if (section == "eval") return core::docs_table(stages::eval_fields().docs());
  if (section == "import") return core::docs_table(stages::import_fields().docs());
  std::string all;
  for (const auto& s : key_doc_sections()) all += (all.empty() ? "" : ", ") + s;
  throw ConfigError("upcycle keys: unknown section '" + section + "'", "sections: " + all);
}

}  // namespace upcycle::runner
