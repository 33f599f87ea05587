// `upcycle report`: one self-contained HTML file per run (no server, no network: plots are embedded
// as PNG data, styles inline) with the paper tables, the plots and the provenance: the resolved
// recipe, git sha, binary and data-manifest sha256s, versions, hosts and wall times of every job;
// and an index of the runs. Tables of a run of a sweep over seeds pool its seeds. Laid out for a
// 1280 px window and for print. No LibTorch.
#pragma once

#include <string>
#include <vector>

#include "tracking/store.h"

namespace upcycle::analysis {

struct ReportPaths {
  std::vector<std::string> pages;  ///< OUT_DIR/<run>/report.html, one per run
  std::string index;               ///< OUT_DIR/index.html
};

/// Writes one page per run, OUT_DIR/<run>/report.html (report_dir_name), with its plots' SVG, PNG,
/// PDF, data and script under OUT_DIR/<run>/plots/, then OUT_DIR/index.html listing every run of
/// the store with a link to each report there. `runs` empty = the latest run. Each file replaces
/// an old one only once it is complete; a run's page never overwrites another run's. A table or
/// plot a run cannot have (no MoE stage, no downstream tasks) is shown with the reason.
ReportPaths write_report(tracking::Store& store, const std::vector<std::string>& runs,
                         const std::string& out_dir);

/// The directory name of a run's report: the name with anything but [A-Za-z0-9.-] (and a leading
/// dot) as '_', and a hash of the name appended when that changed it (no two runs share one).
std::string report_dir_name(const std::string& run);

/// RFC 4648 base64 (the report's embedded images).
std::string base64(const std::string& bytes);

}  // namespace upcycle::analysis
