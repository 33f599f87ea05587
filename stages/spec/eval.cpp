#include "stages/spec/eval.h"

#include "stages/data/builtin_tasks.h"
#include "stages/spec/train.h"

#include <limits>

namespace upcycle::stages {
namespace {

core::Fields<EvalJobSpec> make_fields() {
  using E = EvalJobSpec;
  using core::kNotKeyed;
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  core::Fields<E> f;
  f.one_of("split", &E::split, {"test", "valid"}, "the held-out split to score")
      .integer("max_windows", &E::max_windows, {0, kMax},
               "cap on windows of `seq_len + 1` tokens per domain; 0 = all")
      .integer("max_examples", &E::max_examples, {0, kMax}, "cap on examples per task; 0 = all")
      .integer("max_new_tokens", &E::max_new_tokens, {1, 65536},
               "generation tasks: greedy tokens at most")
      .boolean("kv_cache", &E::kv_cache,
               "greedy generation with a KV cache; `false` re-runs the whole prefix per token (the "
               "same tokens, "
               "slower; for benchmarks). Not part of the job key",
               kNotKeyed)
      .boolean("examples_file", &E::examples_file,
               "write each task example's scores to `examples.jsonl` in the job directory (off for "
               "large task sets). Not part of the job key",
               kNotKeyed)
      .one_of(
          "precision", &E::precision, {"auto", "fp32", "bf16"},
          "the forward passes' precision (`auto`: bf16 autocast on CUDA, fp32 on the CPU); token "
          "log-likelihoods come from fp32 log-softmax and are summed in fp64 either way. Part of "
          "the job key "
          "when bf16",
          kNotKeyed)
      .text("data_dir", &E::data_dir, "the prepare job's data (path)", core::kPlanned | kNotKeyed)
      .planned("domains", &E::domains, "the domains to score");
  return f;
}

nlohmann::json models_json(const std::vector<EvalModel>& models, bool with_paths) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& m : models) {
    out.push_back(with_paths ? nlohmann::json{{"name", m.name}, {"checkpoint", m.checkpoint}}
                             : nlohmann::json(m.name));
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
    tasks.push_back(is_builtin_tasks(t.path)
                        ? nlohmann::json(t.path)
                        : nlohmann::json{{"path", t.path}, {"sha256", t.sha256}});
  }
  for (const auto& e : s.ensembles) {
    ensembles.push_back({{"name", e.name}, {"members", models_json(e.members, with_paths)}});
  }
  // data_dir, kv_cache and precision are how, not what: none changes a result (bf16 is keyed
  // below).
  nlohmann::json j = with_paths ? eval_fields().to_json(s) : eval_fields().key_material(s);
  j["tasks"] = tasks;
  j["models"] = models_json(s.models, with_paths);
  j["ensembles"] = ensembles;
  return j;
}

}  // namespace

const core::Fields<EvalJobSpec>& eval_fields() {
  static const core::Fields<EvalJobSpec> kFields = make_fields();
  return kFields;
}

void validate(const EvalJobSpec& s) {
  eval_fields().check(s);
  check(!s.data_dir.empty(), "data_dir", "missing");
  check(!s.domains.empty(), "domains", "needs at least one domain");
  for (size_t i = 0; i < s.domains.size(); ++i)
    check_name(s.domains[i], "domains[" + std::to_string(i) + "]");
  check(!s.models.empty() || !s.ensembles.empty(), "models",
        "an eval job needs models or ensembles");
  for (size_t i = 0; i < s.tasks.size(); ++i) {
    check(is_builtin_tasks(s.tasks[i].path) || s.tasks[i].sha256.size() == 64,
          "tasks[" + std::to_string(i) + "].sha256",
          "a task file needs the sha256 it was planned with");
  }
  for (size_t i = 0; i < s.ensembles.size(); ++i) {
    check(!s.ensembles[i].members.empty(), "ensembles[" + std::to_string(i) + "].members",
          "is empty");
  }
}

nlohmann::json to_json(const EvalJobSpec& s) { return content_json(s, true); }

void read_spec(const SpecReader& r, EvalJobSpec& e) {
  std::vector<std::string> also = envelope_fields();
  also.insert(also.end(), {"tasks", "models", "ensembles"});
  eval_fields().read(r, e, false, also);
  for (const char* required : {"data_dir", "domains"}) check(r.has(required), required, "missing");
  e.tasks.clear();
  const nlohmann::json& tasks =
      r.json().contains("tasks") ? r.json().at("tasks") : nlohmann::json::array();
  check(tasks.is_array(), "tasks", "expected a list");
  for (size_t i = 0; i < tasks.size(); ++i) {
    if (tasks[i].is_string() && is_builtin_tasks(tasks[i].get<std::string>())) {
      e.tasks.push_back({tasks[i].get<std::string>(), ""});
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
  if (const std::string p = effective_precision(s.precision, rt.device); p != "fp32")
    j["precision"] = p;
  return j;
}

}  // namespace upcycle::stages
