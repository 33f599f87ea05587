#include "stages/spec/eval.h"

#include "stages/spec/train.h"

namespace upcycle::stages {
namespace {

nlohmann::json models_json(const std::vector<EvalModel>& models, bool with_paths) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : models) {
    out.push_back(with_paths ? nlohmann::json{{"name", m.name}, {"checkpoint", m.checkpoint}} : nlohmann::json(m.name));
  }
  return out;
}

std::vector<EvalModel> read_models(const SpecReader& r, const char* field) {
  std::vector<EvalModel> out;
  for (const auto& m : r.items(field)) {
    m.expect_only({"name", "checkpoint"});
    out.push_back({m.value<std::string>("name"), m.value<std::string>("checkpoint")});
  }
  return out;
}

// Names, not paths, go into the key: the input keys pin the checkpoints.
nlohmann::json content_json(const EvalJobSpec& s, bool with_paths) {
  nlohmann::json tasks = nlohmann::json::array(), ensembles = nlohmann::json::array();
  for (const auto& t : s.tasks) {
    tasks.push_back(t.path == "builtin" ? nlohmann::json("builtin") : nlohmann::json{{"path", t.path}, {"sha256", t.sha256}});
  }
  for (const auto& e : s.ensembles) {
    ensembles.push_back({{"name", e.name}, {"members", models_json(e.members, with_paths)}});
  }
  nlohmann::json j = {{"domains", s.domains}, {"split", s.split}, {"max_windows", s.max_windows},
                      {"tasks", tasks}, {"max_examples", s.max_examples}, {"max_new_tokens", s.max_new_tokens},
                      {"models", models_json(s.models, with_paths)}, {"ensembles", ensembles}};
  if (with_paths) {  // how, not what: neither changes a result
    j["data_dir"] = s.data_dir;
    j["kv_cache"] = s.kv_cache;
    j["precision"] = s.precision;
  }
  return j;
}

}  // namespace

void validate(const EvalJobSpec& s) {
  check(!s.data_dir.empty(), "data_dir", "missing");
  check(!s.domains.empty(), "domains", "needs at least one domain");
  for (size_t i = 0; i < s.domains.size(); ++i) check_name(s.domains[i], "domains[" + std::to_string(i) + "]");
  check_choice(s.split, "split", {"test", "valid"});
  check_choice(s.precision, "precision", {"auto", "fp32", "bf16"});
  check(s.max_windows >= 0, "max_windows", "must be >= 0 (0: every window)");
  check(s.max_examples >= 0, "max_examples", "must be >= 0 (0: all)");
  check(s.max_new_tokens >= 1 && s.max_new_tokens <= 65536, "max_new_tokens", "must be in [1, 65536]");
  check(!s.models.empty() || !s.ensembles.empty(), "models", "an eval job needs models or ensembles");
  for (size_t i = 0; i < s.tasks.size(); ++i) {
    check(s.tasks[i].path == "builtin" || s.tasks[i].sha256.size() == 64, "tasks[" + std::to_string(i) + "].sha256",
          "a task file needs the sha256 it was planned with");
  }
  for (size_t i = 0; i < s.ensembles.size(); ++i) {
    check(!s.ensembles[i].members.empty(), "ensembles[" + std::to_string(i) + "].members", "is empty");
  }
}

nlohmann::json to_json(const EvalJobSpec& s) { return content_json(s, true); }

void read_spec(const SpecReader& r, EvalJobSpec& e) {
  expect_fields(r, {"data_dir", "domains", "split", "max_windows", "tasks", "max_examples", "max_new_tokens",
                    "kv_cache", "precision", "models", "ensembles"});
  e.data_dir = r.value<std::string>("data_dir");
  e.domains = r.value<std::vector<std::string>>("domains");
  e.split = r.value("split", e.split);
  e.max_windows = r.value("max_windows", e.max_windows);
  e.max_examples = r.value("max_examples", e.max_examples);
  e.max_new_tokens = r.value("max_new_tokens", e.max_new_tokens);
  e.kv_cache = r.value("kv_cache", e.kv_cache);
  e.precision = r.value("precision", e.precision);
  e.tasks.clear();
  const nlohmann::json& tasks = r.json().contains("tasks") ? r.json().at("tasks") : nlohmann::json::array();
  check(tasks.is_array(), "tasks", "expected a list");
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (tasks[i] == "builtin") {
      e.tasks.push_back({"builtin", ""});
      continue;
    }
    SpecReader t(tasks[i], "tasks[" + std::to_string(i) + "]");
    t.expect_only({"path", "sha256"});
    e.tasks.push_back({t.value<std::string>("path"), t.value<std::string>("sha256")});
  }
  e.models = read_models(r, "models");
  for (const auto& en : r.items("ensembles")) {
    en.expect_only({"name", "members"});
    e.ensembles.push_back({en.value<std::string>("name"), read_models(en, "members")});
  }
  validate(e);
}

nlohmann::json key_material(const EvalJobSpec& s, const JobRuntime& rt) {
  nlohmann::json j = content_json(s, false);
  j["numerics"] = numerics_of(rt);
  if (const std::string p = effective_precision(s.precision, rt.device); p != "fp32") j["precision"] = p;
  return j;
}

}  // namespace upcycle::stages
