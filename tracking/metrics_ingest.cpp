#include "tracking/metrics_ingest.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace upcycle::tracking {

std::vector<MetricPoint> read_metrics_jsonl(const std::string& path) {
  std::vector<MetricPoint> points;
  std::ifstream in(path);
  if (!in) return points;
  std::string line;
  int line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.empty()) continue;
    bool last_line = in.peek() == EOF;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
      int64_t step = j.at("step").get<int64_t>();
      double time = j.at("time").get<double>();
      for (const auto& [k, v] : j.at("values").items()) {
        MetricPoint p{k, step, std::nullopt, time};
        if (!v.is_null()) p.value = v.get<double>();
        points.push_back(std::move(p));
      }
    } catch (const nlohmann::json::exception& e) {
      if (last_line) break;  // torn write from a killed job
      throw StoreError(path + ":" + std::to_string(line_no) +
                       ": malformed metrics line: " + e.what());
    }
  }
  return points;
}

}  // namespace upcycle::tracking
