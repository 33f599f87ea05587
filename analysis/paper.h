// The papers' own numbers, shown beside ours (analysis/paper_numbers.json, compiled in). Each table
// says where its numbers come from, maps our domains to its columns, and maps each of its rows to
// the stage labels recipes give the same model (seed, experts/code, btx_dm, bam_dm, ...). No
// LibTorch.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace upcycle::analysis {

struct PaperRow {
  std::string label;                           ///< as the paper writes it: "BAM DM (Expert KV)"
  std::vector<std::string> ours;               ///< stage labels that stand for it, first match wins
  std::map<std::string, double> values;        ///< our domain name (or "avg") -> the paper's number
  std::map<std::string, std::string> reasons;  ///< column -> why ours differs, where it does
};

struct PaperTable {
  std::string id;                              ///< "ppl", "attention-routing", ...
  std::string source;                          ///< "BAM Table 1 (590M seed)"
  std::map<std::string, std::string> columns;  ///< our domain -> the paper's column name
  std::vector<std::string> average_of;         ///< the domains the paper's average is taken over
  std::string reference_row;                   ///< the row relative changes are taken against (BTX)
  int64_t context = 0;                         ///< flops: the context length the paper counts at
  std::vector<PaperRow> rows;

  /// The paper row standing for our model `label`, if any.
  const PaperRow* row_for(const std::string& label) const;
  const PaperRow* reference() const;
  /// The paper's average of a row: its "avg" value, else the mean of its values over average_of
  /// (every value when the table names none).
  double average(const PaperRow& row) const;
};

/// The table `id`; nullopt when the papers have no table of that name.
std::optional<PaperTable> paper_table(const std::string& id);

}  // namespace upcycle::analysis
