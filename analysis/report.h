// `upcycle report`: one self-contained HTML file (no server, no network: plots are embedded as PNG
// data, styles inline) with, for each run, the paper tables, the plots and the provenance: the
// resolved recipe, git sha, binary and data-manifest sha256s, versions, hosts and wall times of
// every job. A run of a sweep over seeds is reported once, pooled with its seeds. No LibTorch.
#pragma once

#include <string>
#include <vector>

#include "tracking/store.h"

namespace upcycle::analysis {

/// Writes OUT_DIR/report.html (replacing an old one only once the new one is complete) and each
/// plot's SVG, PNG, data and script under OUT_DIR/plots/. `runs` empty = the latest run. Returns
/// the HTML path. A table or plot a run cannot have (no MoE stage, no downstream tasks) is shown
/// with the reason.
std::string write_report(tracking::Store& store, const std::vector<std::string>& runs,
                         const std::string& out_dir);

/// RFC 4648 base64 (the report's embedded images).
std::string base64(const std::string& bytes);

}  // namespace upcycle::analysis
