#include "core/job_files.h"

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/json_integer.h"
#include "core/sha256.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace upcycle::core {

namespace {

// sha256 of the result's compact JSON without its digest: what the job wrote, so an edit shows.
std::string result_digest(nlohmann::json j) {
  j.erase(kResultDigestKey);
  return "sha256:" + sha256_hex(j.dump());
}

// A NaN or infinite number would be written as JSON null and read back as a malformed result: the
// job fails here instead, naming the number.
void check_finite(double v, const std::string& what) {
  if (!std::isfinite(v)) {
    throw Error(what + " is " + (std::isnan(v) ? "NaN" : "infinite") +
                ": the model diverged or the data is degenerate");
  }
}

}  // namespace

std::optional<double> positive_output(const JobResult& r, const std::string& name) {
  const auto it = r.outputs.find(name);
  if (it == r.outputs.end() || it->second.empty() || std::isspace(uint8_t(it->second[0]))) {
    return std::nullopt;
  }
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  if (*end != '\0' || !std::isfinite(v) || v <= 0) return std::nullopt;
  return v;
}

nlohmann::json to_json(const JobResult& r) {
  nlohmann::json evals = nlohmann::json::array();
  for (const auto& e : r.evals) {
    check_finite(e.value, e.task + " " + e.metric + " of " + e.model);
    if (e.stderr_value)
      check_finite(*e.stderr_value, e.task + " " + e.metric + " stderr of " + e.model);
    nlohmann::json je = {
        {"model", e.model}, {"task", e.task}, {"metric", e.metric}, {"value", e.value}, {"n", e.n}};
    je["stderr"] = e.stderr_value ? nlohmann::json(*e.stderr_value) : nlohmann::json(nullptr);
    je["filter"] = e.filter;
    je["n_shot"] = e.n_shot ? nlohmann::json(*e.n_shot) : nlohmann::json(nullptr);
    evals.push_back(je);
  }
  nlohmann::json arts = nlohmann::json::array();
  for (const auto& a : r.artifacts) {
    arts.push_back({{"path", a.path}, {"kind", a.kind}, {"sha256", a.sha256}, {"bytes", a.bytes}});
  }
  nlohmann::json out = {{"format_version", kResultFormatVersion},
                        {"status", r.status},
                        {"key", r.key},
                        {"outputs", r.outputs},
                        {"evals", evals},
                        {"artifacts", arts},
                        {"wall_s", r.wall_s},
                        {"host", r.host},
                        {"device", r.device},
                        {"torch_version", r.torch_version},
                        {"code",
                         {{"version", r.code.version},
                          {"git_sha", r.code.git_sha},
                          {"git_dirty", r.code.git_dirty},
                          {"binary_sha256", r.code.binary_sha256}}}};
  if (!r.mix.empty()) {
    nlohmann::json mix = nlohmann::json::array();
    for (const auto& m : r.mix) {
      check_finite(m.weight, "the blend weight of " + m.part);
      mix.push_back(
          {{"domain", m.domain}, {"part", m.part}, {"weight", m.weight}, {"samples", m.samples}});
    }
    out["mix"] = mix;
  }
  out[kResultDigestKey] = result_digest(out);
  return out;
}

JobResult job_result_from_json(const nlohmann::json& j, const std::string& origin) {
  try {
    const nlohmann::json& v = j.at("format_version");
    const int version =
        v.is_number_integer() && integer_problem<int>(v).empty() ? v.get<int>() : -1;
    if (version != kResultFormatVersion && version != 1) {
      throw Error(origin + ": result format version " + v.dump() +
                  " is not supported (expected 1 or " + std::to_string(kResultFormatVersion) + ")");
    }
    if (version >= 2) {
      if (!j.contains(kResultDigestKey) || !j.at(kResultDigestKey).is_string()) {
        throw Error(origin + ": the job result has no digest");
      }
      if (j.at(kResultDigestKey).get<std::string>() != result_digest(j)) {
        throw Error(
            origin +
                ": the job result does not match its digest: it was changed after the job wrote it",
            "a result is the job's own record; run the stage again with --force STAGE");
      }
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
      if (je.contains("n_shot") && !je.at("n_shot").is_null())
        e.n_shot = je.at("n_shot").get<int64_t>();
      r.evals.push_back(e);
    }
    for (const auto& ja : j.at("artifacts")) {
      r.artifacts.push_back({ja.at("path").get<std::string>(), ja.at("kind").get<std::string>(),
                             ja.at("sha256").get<std::string>(), ja.at("bytes").get<int64_t>()});
    }
    if (j.contains("mix")) {
      for (const auto& jm : j.at("mix")) {
        r.mix.push_back({jm.at("domain").get<std::string>(), jm.at("part").get<std::string>(),
                         jm.at("weight").get<double>(), jm.at("samples").get<int64_t>()});
      }
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

namespace {

// nlohmann's message without its "[json.exception.parse_error.101] parse error at line 1, column 2:
// " prefix, which names a library and a byte count a user cannot act on: "syntax error while
// parsing value: invalid literal; last read: 'x'".
std::string parse_reason(const std::string& what) {
  std::string r = what;
  if (size_t at = r.find("column "); at != std::string::npos) {
    if (size_t colon = r.find(": ", at); colon != std::string::npos) r = r.substr(colon + 2);
  } else if (size_t close = r.find("] "); close != std::string::npos) {
    r = r.substr(close + 2);
  }
  if (size_t dash = r.find(" - "); dash != std::string::npos) r.replace(dash, 3, ": ");
  return r;
}

}  // namespace

nlohmann::json parse_json(const std::string& text, const std::string& origin) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    size_t line = 1, column = 1;
    for (size_t i = 0; i + 1 < e.byte && i < text.size(); ++i) {
      if (text[i] == '\n')
        ++line, column = 1;
      else
        ++column;
    }
    throw Error(origin + ":" + std::to_string(line) + ":" + std::to_string(column) +
                ": invalid JSON: " + parse_reason(e.what()));
  } catch (const nlohmann::json::exception&) {  // out_of_range: a number beyond a double
    throw Error(origin + ": invalid JSON: a number is out of range");
  }
}

nlohmann::json read_json_file(const std::string& path, int64_t max_bytes) {
  return parse_json(read_file(path, max_bytes), path);
}

}  // namespace upcycle::core
