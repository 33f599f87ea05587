// The recipe side of `eval`: perplexity and downstream tasks of models and BTM ensembles, one job.
#include <filesystem>

#include "core/sha256.h"
#include "runner/kinds/stage_kind.h"
#include "runner/planner.h"
#include "stages/data/builtin_tasks.h"
#include "stages/spec/eval.h"

namespace upcycle::runner {
namespace {

struct EvalStage : StageParams {
  std::vector<std::string> models;
  std::vector<std::string> btm;  ///< dense models ensembled as "btm" (eval only)
  std::vector<std::string> domains = {"all"};
  std::vector<std::string> tasks = {"builtin"};  ///< builtin[/FAMILY] and/or task JSONL files
  stages::EvalJobSpec spec;  ///< split, max_windows, max_examples, max_new_tokens
};

std::vector<std::string> parse_tasks(const YamlReader& tasks) {
  if (!tasks.is_sequence()) throw tasks.error("expected a list: builtin and/or task files");
  std::vector<std::string> out;
  for (size_t i = 0; i < tasks.size(); ++i) {
    std::string t = tasks.at(i).str();
    if (t.rfind("builtin", 0) == 0 && !stages::is_builtin_tasks(t)) {
      throw tasks.at(i).error("unknown built-in tasks '" + t + "'",
                              "builtin, or builtin/domain, builtin/arith-mc, builtin/cont or "
                              "builtin/arith for one family");
    }
    if (!stages::is_builtin_tasks(t) && !std::filesystem::is_regular_file(t)) {
      throw tasks.at(i).error("task file '" + t + "' does not exist",
                              "tasks: [builtin] or JSONL task files");
    }
    out.push_back(t);
  }
  return out;
}

class EvalKind : public StageKind {
 public:
  std::string name() const override { return "eval"; }
  std::vector<std::string> keys() const override {
    std::vector<std::string> keys = stages::eval_fields().names(/*recipe=*/true);
    keys.insert(keys.end(), {"models", "btm", "domains", "tasks"});
    return keys;
  }

  std::shared_ptr<const StageParams> parse(const YamlReader& r,
                                           const Recipe& recipe) const override {
    auto e = std::make_shared<EvalStage>();
    if (r.has("models")) e->models = r.child("models").strings();
    if (r.has("btm")) e->btm = r.child("btm").strings();
    if (e->models.empty() && e->btm.empty()) throw r.error("an eval stage needs models: or btm:");
    if (r.has("domains")) e->domains = r.child("domains").strings();
    stages::eval_fields().read_present(YamlSource(r), e->spec);
    if (r.has("tasks")) e->tasks = parse_tasks(r.child("tasks"));
    if (recipe.data.pretokenized && r.has("tasks") && !e->tasks.empty()) {
      throw r.child("tasks").error(
          "downstream tasks are text and need the SentencePiece tokenizer; with pre-tokenized "
          "shards "
          "evaluate perplexity here and tasks through a command stage");
    }
    return e;
  }

  std::vector<StageInput> inputs(const StageDef& s) const override {
    std::vector<StageInput> in;
    for (const auto& m : s.as<EvalStage>()->models) in.push_back({"models", m});
    for (const auto& m : s.as<EvalStage>()->btm) in.push_back({"btm", m});
    return in;
  }

  void plan(const StageDef& s, Planner& p) const override {
    const auto& e = *s.as<EvalStage>();
    stages::EvalJobSpec spec = e.spec;
    spec.domains = e.domains;
    if (spec.domains.size() == 1 && spec.domains[0] == "all")
      spec.domains = p.recipe().domain_names();
    for (const auto& d : spec.domains) p.check_domain(s, "domains", d);
    spec.data_dir = p.data_dir();
    std::vector<size_t> deps{p.data_job()};
    for (const auto& name : e.models) {
      for (size_t id : p.models_of(s, "models", name)) {
        deps.push_back(id);
        spec.models.push_back({p.job(id).stage, p.job(id).dir + "/checkpoint"});
      }
    }
    stages::EvalEnsemble btm{"btm", {}};
    for (const auto& name : e.btm) {
      for (size_t id : p.models_of(s, "btm", name)) {
        if (!p.job(id).model.is_dense()) {
          throw stage_error(
              s, "btm",
              "'" + p.job(id).stage + "' is not a dense model (BTM ensembles dense experts)");
        }
        deps.push_back(id);
        btm.members.push_back({p.job(id).stage, p.job(id).dir + "/checkpoint"});
      }
    }
    if (!btm.members.empty()) spec.ensembles.push_back(btm);
    spec.tasks.clear();  // user task files by content, so an edited file is a new job
    for (const auto& t : e.tasks)
      spec.tasks.push_back({t, stages::is_builtin_tasks(t) ? "" : core::sha256_file(t)});
    p.add(s, s.name, draft(spec, p.runtime(s)), deps);
  }
};

}  // namespace

const StageKind& eval_kind() {
  static const EvalKind kKind;
  return kKind;
}

}  // namespace upcycle::runner
