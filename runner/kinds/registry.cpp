#include "runner/kinds/stage_kind.h"

namespace upcycle::runner {

const std::vector<const StageKind*>& stage_kinds() {
  static const std::vector<const StageKind*> kKinds = {
      &prepare_kind(), &train_kind(),   &branch_kind(), &upcycle_kind(),
      &eval_kind(),    &command_kind(), &import_kind()};
  return kKinds;
}

const StageKind* find_stage_kind(const std::string& name) {
  for (const StageKind* k : stage_kinds()) {
    if (k->name() == name) return k;
  }
  return nullptr;
}

// "optim.beta1" -> r.child("optim").child("beta1"); "domains[2].name" ->
// r.child("domains").at(2)...; as deep as the YAML goes (a field the recipe did not set is blamed
// on its nearest parent).
ConfigError spec_error_at(const YamlReader& r, const std::string& field,
                          const std::string& reason) {
  YamlReader at = r;
  size_t pos = 0;
  bool reached = false;
  while (pos < field.size()) {
    size_t end = field.find_first_of(".[", pos);
    std::string part = field.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (!part.empty()) {
      if (!at.has(part)) break;
      at = at.child(part);
    }
    if (end == std::string::npos) {
      reached = true;
      break;
    }
    if (field[end] == '[') {
      size_t close = field.find(']', end);
      size_t i = std::stoul(field.substr(end + 1, close - end - 1));
      if (!at.is_sequence() || i >= at.size()) break;
      at = at.at(i);
      end = close + 1;
      reached = end >= field.size();
      if (end < field.size() && field[end] == '.') ++end;
      pos = end;
      continue;
    }
    pos = end + 1;
  }
  return at.error(reached ? reason : field + ": " + reason);
}

}  // namespace upcycle::runner
