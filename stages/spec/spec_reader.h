// Typed, strict reading of a job spec (JSON) for the per-kind spec structs of this folder. Every error
// is a SpecError naming the field's dotted path, so a hand-written spec.json with `batch_size: 0` gets
// "batch_size: must be >= 1" (exit 1), and the recipe parser can point the same message at the YAML
// key that set the field.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <type_traits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_integer.h"

namespace upcycle::stages {

/// A spec field is missing, mistyped or out of range. `field` is the dotted path ("optim.beta1").
class SpecError : public Error {
 public:
  SpecError(const std::string& field, const std::string& reason)
      : Error(field + ": " + reason), field_(field), reason_(reason) {}
  const std::string& field() const { return field_; }
  const std::string& reason() const { return reason_; }

 private:
  std::string field_;
  std::string reason_;
};

/// Throws SpecError(field, reason) unless `ok`.
inline void check(bool ok, const std::string& field, const std::string& reason) {
  if (!ok) throw SpecError(field, reason);
}

/// Throws SpecError unless `value` is one of `choices`.
void check_choice(const std::string& value, const std::string& field, std::initializer_list<const char*> choices);

/// Throws SpecError unless `name` can be a path component: [A-Za-z0-9][A-Za-z0-9_.-]*, at most 64
/// characters (domain names become shard file names).
void check_name(const std::string& name, const std::string& field);

class SpecReader {
 public:
  explicit SpecReader(const nlohmann::json& j, std::string prefix = "");

  bool has(const char* name) const { return j_.contains(name); }
  /// A required field.
  template <typename T>
  T get(const char* name) const {
    if (!j_.contains(name)) throw SpecError(path(name), "missing");
    return convert<T>(j_.at(name), path(name));
  }
  /// An optional field: `fallback` when absent.
  template <typename T>
  T get(const char* name, T fallback) const {
    return j_.contains(name) ? convert<T>(j_.at(name), path(name)) : fallback;
  }
  /// A required object field, read with the same rules.
  SpecReader child(const char* name) const;
  /// The elements of a required array field, each as a reader (objects) named "name[i]".
  std::vector<SpecReader> items(const char* name) const;
  /// Throws unless every field of the object is in `allowed` (a typo in a hand-written spec is caught).
  void expect_only(std::initializer_list<const char*> allowed) const;
  const nlohmann::json& json() const { return j_; }
  std::string path(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "." + name; }

 private:
  template <typename T>
  static T convert(const nlohmann::json& v, const std::string& field) {
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (std::string why = core::integer_problem<T>(v); !why.empty()) throw SpecError(field, why);
    }
    try {
      return v.get<T>();
    } catch (const nlohmann::json::exception&) {
      throw SpecError(field, std::string("has the wrong type (") + v.type_name() + ")");
    }
  }
  const nlohmann::json& j_;
  std::string prefix_;
};

}  // namespace upcycle::stages
