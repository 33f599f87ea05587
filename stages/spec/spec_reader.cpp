#include "stages/spec/spec_reader.h"

namespace upcycle::stages {

void check_choice(const std::string& value, const std::string& field,
                  std::initializer_list<const char*> choices) {
  std::string listed;
  for (const char* c : choices) {
    if (value == c) return;
    listed += (listed.empty() ? "" : ", ") + std::string(c);
  }
  throw core::FieldError(field, "'" + value + "' is not one of " + listed);
}

void check_name(const std::string& name, const std::string& field) {
  bool ok = !name.empty() && name.size() <= 64 && std::isalnum(static_cast<unsigned char>(name[0]));
  for (char c : name)
    ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.');
  check(ok, field,
        "'" + name +
            "' is not a valid name (letters, digits, _ - . ; starting with a letter or digit)");
}

}  // namespace upcycle::stages
