#include "stages/command/lm_eval_results.h"

#include <filesystem>

#include "core/error.h"

namespace upcycle::stages {

namespace {

// "acc,none" -> ("acc", "none"); "acc" -> ("acc", "none").
std::pair<std::string, std::string> split_metric(const std::string& key) {
  size_t comma = key.find(',');
  if (comma == std::string::npos) return {key, "none"};
  return {key.substr(0, comma), key.substr(comma + 1)};
}

bool is_stderr_key(const std::string& metric) {
  const std::string suffix = "_stderr";
  return metric.size() > suffix.size() &&
         metric.compare(metric.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

std::vector<core::EvalRow> parse_lm_eval_results(const nlohmann::json& doc,
                                                 const std::string& model,
                                                 const std::string& origin) {
  if (!doc.is_object() || !doc.contains("results") || !doc.at("results").is_object()) {
    throw StageError(origin + ": not lm-evaluation-harness results (no \"results\" mapping)");
  }
  std::vector<core::EvalRow> rows;
  for (const auto& [task, metrics] : doc.at("results").items()) {
    if (!metrics.is_object()) continue;
    for (const auto& [key, value] : metrics.items()) {
      auto [metric, filter] = split_metric(key);
      if (is_stderr_key(metric) || !value.is_number())
        continue;  // "alias", "samples", "N/A" values
      core::EvalRow r;
      r.model = model;
      r.task = task;
      r.metric = metric;
      r.filter = filter;
      r.value = value.get<double>();
      std::string stderr_key =
          metric + "_stderr" + (key.find(',') == std::string::npos ? "" : "," + filter);
      if (metrics.contains(stderr_key) && metrics.at(stderr_key).is_number()) {
        r.stderr_value = metrics.at(stderr_key).get<double>();
      }
      const auto& samples = doc.value("n-samples", nlohmann::json::object());
      if (samples.contains(task) && samples.at(task).is_object()) {
        const auto& s = samples.at(task);
        if (s.contains("effective") && s.at("effective").is_number_integer())
          r.n = s.at("effective").get<int64_t>();
        else if (s.contains("original") && s.at("original").is_number_integer())
          r.n = s.at("original").get<int64_t>();
      }
      const auto& shots = doc.value("n-shot", nlohmann::json::object());
      if (shots.contains(task) && shots.at(task).is_number_integer())
        r.n_shot = shots.at(task).get<int64_t>();
      rows.push_back(r);
    }
  }
  return rows;
}

std::string find_lm_eval_results(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) return path;
  if (!fs::is_directory(path, ec)) throw StageError(path + ": no such results file or directory");
  std::string best;
  fs::file_time_type best_time;
  for (const auto& e : fs::recursive_directory_iterator(path, ec)) {
    std::string name = e.path().filename().string();
    if (!e.is_regular_file() || name.rfind("results", 0) != 0 || e.path().extension() != ".json")
      continue;
    auto t = e.last_write_time();
    if (best.empty() || t > best_time || (t == best_time && e.path().string() > best)) {
      best = e.path().string();
      best_time = t;
    }
  }
  if (best.empty()) throw StageError(path + ": no results*.json below this directory");
  return best;
}

}  // namespace upcycle::stages
