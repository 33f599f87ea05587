#include "stages/spec/spec_reader.h"

namespace upcycle::stages {

void check_choice(const std::string& value, const std::string& field, std::initializer_list<const char*> choices) {
  std::string listed;
  for (const char* c : choices) {
    if (value == c) return;
    listed += (listed.empty() ? "" : ", ") + std::string(c);
  }
  throw SpecError(field, "'" + value + "' is not one of " + listed);
}

void check_name(const std::string& name, const std::string& field) {
  bool ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0]));
  for (char c : name) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  check(ok, field, "'" + name + "' is not a valid name (letters, digits, _ - . ; starting with a letter or digit)");
}

SpecReader::SpecReader(const nlohmann::json& j, std::string prefix) : j_(j), prefix_(std::move(prefix)) {
  if (!j_.is_object()) throw SpecError(prefix_.empty() ? "spec" : prefix_, "expected a JSON object");
}

SpecReader SpecReader::child(const char* name) const {
  if (!j_.contains(name)) throw SpecError(path(name), "missing");
  return SpecReader(j_.at(name), path(name));
}

std::vector<SpecReader> SpecReader::items(const char* name) const {
  if (!j_.contains(name)) throw SpecError(path(name), "missing");
  const nlohmann::json& a = j_.at(name);
  if (!a.is_array()) throw SpecError(path(name), "expected a list");
  std::vector<SpecReader> out;
  for (size_t i = 0; i < a.size(); ++i) out.emplace_back(a[i], path(name) + "[" + std::to_string(i) + "]");
  return out;
}

void SpecReader::expect_only(std::initializer_list<const char*> allowed) const {
  for (const auto& [k, v] : j_.items()) {
    bool known = false;
    for (const char* a : allowed) known = known || k == a;
    if (!known) throw SpecError(path(k), "unknown field");
  }
}

}  // namespace upcycle::stages
