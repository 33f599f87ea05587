// Renders a ResultSet as a Markdown table, CSV (RFC 4180 quoting) or JSON (array of objects).
// No LibTorch.
#pragma once

#include <string>

#include "tracking/store.h"

namespace upcycle::analysis {

enum class Format { kTable, kCsv, kJson };

/// "table"/"md", "csv", "json"; throws ConfigError naming the bad value.
Format parse_format(const std::string& name);
std::string render(const tracking::ResultSet& rs, Format format);
/// A cell as text: "" for NULL, integers plain, reals with up to 6 significant digits (4 decimals
/// minimum precision for perplexities).
std::string cell_text(const tracking::Cell& c);

}  // namespace upcycle::analysis
