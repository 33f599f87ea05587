// A table for people and for programs at once: `display` is what the text, Markdown, LaTeX and HTML
// forms show ("65.70 ± 0.41", "missing"), `data` the numbers CSV and JSON carry (mean, std and n in
// their own columns), with a title above and notes below. No LibTorch.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "analysis/render.h"
#include "tracking/store.h"

namespace upcycle::analysis {

struct Table {
  std::string title;
  tracking::ResultSet display;
  std::vector<std::vector<bool>> best;  ///< display cells to emphasise (the best value of a column)
  tracking::ResultSet data;
  std::vector<std::string> notes;
  std::string no_rows;  ///< set when the run has nothing for this table: why (an expected case)
  std::string hint;     ///< with no_rows: what would fill it
  bool empty() const { return !no_rows.empty(); }
};

/// A table without rows: `why` (naming the store and run) and what would fill it.
Table no_rows_table(std::string title, std::string why, std::string hint);

/// Title, table and notes in `format`; CSV, TSV and JSON carry `data` alone (JSON as {title, rows,
/// notes}). An empty table renders as its title and why it has no rows.
std::string render_table(const Table& t, Format format);

/// Names with one line each (`upcycle table --list`, `upcycle plot --list`).
using NamedList = std::vector<std::pair<std::string, std::string>>;

/// Throws ConfigError "upcycle KIND: unknown KIND 'name' (known: a, b, ...)" unless `name` is in
/// `known`.
void check_known(const NamedList& known, const std::string& name, const std::string& kind);

/// Mean, sample standard deviation and count of the values of one cell across seeds.
struct Stat {
  double mean = 0;
  double std = 0;
  int n = 0;
};
Stat stat_of(const std::vector<double>& values);

/// "65.70", or "65.70 ± 0.41" when n > 1, with `decimals` decimals; "missing" when n == 0.
std::string stat_text(const Stat& s, int decimals);

}  // namespace upcycle::analysis
