// The prepare job's spec (kind "prepare") is the prepare stage's own PrepareSpec (data/prepare.h):
// its JSON form, validation and key material. out_dir, the tokenizer's threads and seed are filled
// by the job (its directory, its runtime, the spec's seed).
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "stages/data/prepare.h"
#include "stages/spec/job_spec.h"

namespace upcycle::stages {

struct PrepareJobSpec : PrepareSpec {
  static constexpr const char* kKind = "prepare";
  /// Bump with any change to what prepare jobs produce (documents, split, tokenizer, shards,
  /// tasks).
  // 2: domain/ and arith-mc/ built-in tasks; 3: pre-tokenized corpora as parts lists (blends,
  // Megatron datasets), the corpus tokenizer kept
  static constexpr int kOutputVersion = 3;
};

/// "file" | "fortune" | "jsonl", and back (throws core::FieldError on `field` for another name).
const char* doc_split_name(DocSplit s);
DocSplit doc_split_from(const std::string& name, const std::string& field);

/// A recipe's `data:` section: the prepare job's spec (less its seed) and `data.seed` when given.
struct DataSection {
  PrepareJobSpec spec;
  std::optional<uint64_t> seed;
};
/// Reads a recipe's `data:` (domains as names or {name, sources, generator, max_bytes, shards}
/// maps, built-in domains filled in, the tokenizer, the split fractions) and validates it. Errors
/// at a key go through `r` (located, for YAML); validation errors are core::FieldErrors naming the
/// field.
DataSection read_data_section(const core::FieldSource& r);

/// Throws core::FieldError naming the field ("domains[2].name: ...", "tokenizer.vocab: ...").
void validate(const PrepareJobSpec& s);
nlohmann::json to_json(const PrepareJobSpec& s);
void read_spec(const SpecReader& r, PrepareJobSpec& out);
nlohmann::json key_material(const PrepareJobSpec& s, const JobRuntime& rt);

}  // namespace upcycle::stages
