#include "stages/spec/import.h"

namespace upcycle::stages {
namespace {

core::Fields<ImportJobSpec> make_fields() {
  using I = ImportJobSpec;
  core::Fields<I> f;
  f.text("path", &I::path,
         "the checkpoint directory (`config.json`, safetensors, `tokenizer.model`); relative to "
         "the working "
         "directory, `~/` expanded. Read when the recipe is loaded: an unsupported architecture or "
         "option is an "
         "error at this line. Not in the key: the fingerprint is",
         core::kNotKeyed)
      .text("fingerprint", &I::fingerprint, "hf_checkpoint_fingerprint(path) at plan time",
            core::kPlanned)
      .integer("seq_len", &I::seq_len, {0, int64_t(1) << 24},
               "training context; 0 = the checkpoint's `max_position_embeddings`");
  return f;
}

}  // namespace

const core::Fields<ImportJobSpec>& import_fields() {
  static const core::Fields<ImportJobSpec> kFields = make_fields();
  return kFields;
}

void validate(const ImportJobSpec& s) {
  import_fields().check(s);
  check(!s.path.empty() && s.path[0] == '/', "path", "must be an absolute directory path");
  check(s.fingerprint.size() == 64, "fingerprint", "must be a sha256 (64 hex digits)");
}

nlohmann::json to_json(const ImportJobSpec& s) { return import_fields().to_json(s); }

void read_spec(const SpecReader& r, ImportJobSpec& s) {
  import_fields().read(r, s, false, envelope_fields());
  for (const char* required : {"path", "fingerprint"}) check(r.has(required), required, "missing");
  validate(s);
}

nlohmann::json key_material(const ImportJobSpec& s, const JobRuntime&) {
  return import_fields().key_material(s);
}

}  // namespace upcycle::stages
