// Parsing of a job's metrics.jsonl into points for the store.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace upcycle::tracking {

struct MetricPoint {
  std::string key;
  int64_t step = 0;
  std::optional<double> value;  ///< null: the job logged a non-finite value
  double time = 0;
};

/// Reads every complete line of `path` (absent file: empty). A torn last line (a job killed
/// mid-write) is skipped; a malformed line elsewhere throws StoreError naming the path and line
/// number.
std::vector<MetricPoint> read_metrics_jsonl(const std::string& path);

}  // namespace upcycle::tracking
