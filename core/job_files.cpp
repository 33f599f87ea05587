#include "core/job_files.h"

#include "core/atomic_file.h"
#include "core/error.h"

namespace upcycle::core {

nlohmann::json to_json(const JobResult& r) {
  nlohmann::json evals = nlohmann::json::array();
  for (const auto& e : r.evals) {
    nlohmann::json je = {{"model", e.model}, {"task", e.task}, {"metric", e.metric},
                         {"value", e.value}, {"n", e.n}};
    je["stderr"] = e.stderr_value ? nlohmann::json(*e.stderr_value) : nlohmann::json(nullptr);
    je["filter"] = e.filter;
    je["n_shot"] = e.n_shot ? nlohmann::json(*e.n_shot) : nlohmann::json(nullptr);
    evals.push_back(je);
  }
  nlohmann::json arts = nlohmann::json::array();
  for (const auto& a : r.artifacts) {
    arts.push_back({{"path", a.path}, {"kind", a.kind}, {"sha256", a.sha256}, {"bytes", a.bytes}});
  }
  return {{"format_version", kResultFormatVersion}, {"status", r.status}, {"key", r.key},
          {"outputs", r.outputs}, {"evals", evals}, {"artifacts", arts}, {"wall_s", r.wall_s},
          {"host", r.host}, {"device", r.device}, {"torch_version", r.torch_version},
          {"code", {{"version", r.code.version}, {"git_sha", r.code.git_sha}, {"git_dirty", r.code.git_dirty},
                    {"binary_sha256", r.code.binary_sha256}}}};
}

JobResult job_result_from_json(const nlohmann::json& j, const std::string& origin) {
  try {
    int version = j.at("format_version").get<int>();
    if (version != kResultFormatVersion) {
      throw Error(origin + ": result format version " + std::to_string(version) +
                  " is not supported (expected " + std::to_string(kResultFormatVersion) + ")");
    }
    JobResult r;
    r.status = j.at("status").get<std::string>();
    r.key = j.at("key").get<std::string>();
    r.outputs = j.at("outputs").get<std::map<std::string, std::string>>();
    for (const auto& je : j.at("evals")) {
      EvalRow e;
      e.model = je.at("model").get<std::string>();
      e.task = je.at("task").get<std::string>();
      e.metric = je.at("metric").get<std::string>();
      e.value = je.at("value").get<double>();
      if (!je.at("stderr").is_null()) e.stderr_value = je.at("stderr").get<double>();
      e.n = je.at("n").get<int64_t>();
      e.filter = je.value("filter", std::string("none"));
      if (je.contains("n_shot") && !je.at("n_shot").is_null()) e.n_shot = je.at("n_shot").get<int64_t>();
      r.evals.push_back(e);
    }
    for (const auto& ja : j.at("artifacts")) {
      r.artifacts.push_back({ja.at("path").get<std::string>(), ja.at("kind").get<std::string>(),
                             ja.at("sha256").get<std::string>(), ja.at("bytes").get<int64_t>()});
    }
    r.wall_s = j.at("wall_s").get<double>();
    r.host = j.at("host").get<std::string>();
    r.device = j.at("device").get<std::string>();
    r.torch_version = j.at("torch_version").get<std::string>();
    if (j.contains("code")) {
      const auto& c = j.at("code");
      r.code = {c.at("version").get<std::string>(), c.at("git_sha").get<std::string>(),
                c.at("git_dirty").get<bool>(), c.at("binary_sha256").get<std::string>()};
    }
    return r;
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": malformed job result: " + e.what());
  }
}

void write_job_result(const std::string& dir, const JobResult& r) {
  write_file_atomic(dir + "/" + kResultFile, to_json(r).dump(2) + "\n");
}

std::optional<JobResult> read_job_result(const std::string& dir) {
  std::string path = dir + "/" + kResultFile;
  if (!file_exists(path)) return std::nullopt;
  return job_result_from_json(read_json_file(path), path);
}

nlohmann::json read_json_file(const std::string& path) {
  std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw Error(path + ": invalid JSON at byte " + std::to_string(e.byte) + ": " + e.what());
  } catch (const nlohmann::json::exception& e) {  // out_of_range: a number beyond a double
    throw Error(path + ": invalid JSON: " + e.what());
  }
}

}  // namespace upcycle::core
