// The recipe key reference, generated from the field tables (core/fields.h): `upcycle keys SECTION`
// prints it, and recipes/README.md holds each section between `<!-- keys: SECTION -->` and
// `<!-- /keys -->` (scripts/gen_key_docs.sh rewrites them; a test checks they are current).
#pragma once

#include <string>
#include <vector>

namespace upcycle::runner {

/// model, train, upcycle, eval, import.
const std::vector<std::string>& key_doc_sections();

/// The Markdown table of `section`'s keys. Throws ConfigError for an unknown section.
std::string key_docs(const std::string& section);

}  // namespace upcycle::runner
