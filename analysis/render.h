// Renders a ResultSet as an aligned text table (Markdown), CSV (RFC 4180 quoting) or TSV, LaTeX (a
// tabular with booktabs rules), HTML or JSON (array of objects). No LibTorch.
#pragma once

#include <string>
#include <vector>

#include "tracking/store.h"

namespace upcycle::analysis {

enum class Format { kTable, kMarkdown, kCsv, kTsv, kLatex, kJson, kHtml };

/// Whether `format` is for programs (csv, tsv, json): data alone on stdout, one document.
bool is_data_format(Format format);

/// "table", "md", "csv", "tsv", "latex", "json" (html is the report's); throws ConfigError naming
/// the bad value.
Format parse_format(const std::string& name);
/// `bold`, when given, marks cells (same shape as rs.rows) to emphasise: **x** in Markdown, \textbf
/// in LaTeX, <b> in HTML, "x*" in the text table; CSV, TSV and JSON ignore it. TSV quotes as CSV
/// does (a field with a tab, quote or newline in double quotes), with tabs between fields.
std::string render(const tracking::ResultSet& rs, Format format,
                   const std::vector<std::vector<bool>>& bold = {});
/// Escapes text for HTML (& < > " ').
std::string html_escape(const std::string& s);
/// Escapes text for LaTeX (& % $ # _ { } ~ ^ \; ± and — become $\pm$ and --).
std::string latex_escape(const std::string& s);
/// A cell as text: "" for NULL, integers plain, reals with up to 6 significant digits (4 decimals
/// minimum precision for perplexities).
std::string cell_text(const tracking::Cell& c);

}  // namespace upcycle::analysis
