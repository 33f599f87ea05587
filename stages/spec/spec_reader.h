// Typed, strict reading of a job spec (JSON) for the per-kind spec structs of this folder: a
// core::JsonSource (core/fields.h). Every error is a core::FieldError naming the field's key path,
// so a hand-written spec.json with `batch_size: 0` gets "batch_size: must be in [1, 16777216], got
// 0" (exit 1), and the recipe parser points the same message at the YAML key that set the field.
#pragma once

#include <initializer_list>
#include <string>

#include "core/fields.h"

namespace upcycle::stages {

using SpecReader = core::JsonSource;

/// Throws core::FieldError(field, reason) unless `ok`.
inline void check(bool ok, const std::string& field, const std::string& reason) {
  if (!ok) throw core::FieldError(field, reason);
}

/// Throws core::FieldError unless `value` is one of `choices`.
void check_choice(const std::string& value, const std::string& field,
                  std::initializer_list<const char*> choices);

/// Throws core::FieldError unless `name` can be a path component: [A-Za-z0-9][A-Za-z0-9_.-]*, at
/// most 64 characters (domain names become shard file names).
void check_name(const std::string& name, const std::string& field);

}  // namespace upcycle::stages
