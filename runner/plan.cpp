#include "runner/plan.h"

#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "core/build_info.h"
#include "core/error.h"
#include "core/sha256.h"
#include "runner/yaml_reader.h"
#include "stages/command/command.h"
#include "stages/model/accounting.h"
#include "stages/upcycle/upcycle_config.h"

namespace upcycle::runner {
namespace {

using json = nlohmann::json;

ConfigError stage_error(const StageDef& s, const std::string& key, const std::string& msg,
                        const std::string& hint = "") {
  return ConfigError(s.location + ": stages." + s.name + (key.empty() ? "" : "." + key) + ": " + msg,
                     hint);
}

// Stage names a stage needs planned first: what it reads, and the stage whose budget it matches.
std::vector<std::string> stage_inputs(const StageDef& s) {
  std::vector<std::string> in = (s.kind == "eval" || s.kind == "command") ? s.models : s.from;
  in.insert(in.end(), s.btm.begin(), s.btm.end());
  if (!s.train.match.empty()) in.push_back(s.train.match);
  return in;
}

// Orders stages so inputs come first; rejects unknown names and cycles.
std::vector<const StageDef*> order_stages(const Recipe& r) {
  std::vector<std::string> names;
  for (const auto& s : r.stages) names.push_back(s.name);
  std::vector<const StageDef*> order;
  std::map<std::string, int> state;  // 0 new, 1 visiting, 2 done
  std::function<void(const StageDef&, std::vector<std::string>&)> visit =
      [&](const StageDef& s, std::vector<std::string>& path) {
        if (state[s.name] == 2) return;
        path.push_back(s.name);
        if (state[s.name] == 1) {
          std::string cycle;
          for (const auto& p : path) cycle += (cycle.empty() ? "" : " -> ") + p;
          throw stage_error(s, "", "stages form a cycle: " + cycle);
        }
        state[s.name] = 1;
        for (const auto& in : stage_inputs(s)) {
          const StageDef* dep = r.find_stage(in);
          if (!dep) {
            std::string guess = closest_match(in, names);
            auto listed = [&](const std::vector<std::string>& v) {
              return std::find(v.begin(), v.end(), in) != v.end();
            };
            std::string key = listed(s.from) ? "from" : listed(s.models) ? "models"
                              : listed(s.btm)  ? "btm"  : "budget.match";
            throw stage_error(s, key,
                              "unknown stage '" + in + "'" +
                                  (guess.empty() ? "" : "; did you mean '" + guess + "'?"));
          }
          visit(*dep, path);
        }
        state[s.name] = 2;
        path.pop_back();
        order.push_back(&s);
      };
  for (const auto& s : r.stages) {
    std::vector<std::string> path;
    visit(s, path);
  }
  return order;
}

void check_domain(const Recipe& r, const StageDef& s, const std::string& key, const std::string& d) {
  auto names = r.data.domain_names();
  if (std::find(names.begin(), names.end(), d) == names.end()) {
    std::string guess = closest_match(d, names);
    throw stage_error(s, key, "domain '" + d + "' is not in data.domains" +
                                  (guess.empty() ? "" : "; did you mean '" + guess + "'?"));
  }
}

int64_t tokens_per_step(const TrainDef& t, const stages::ModelConfig& m) { return t.batch_size * m.seq_len; }

json train_material(const TrainDef& t) {
  json m = {{"batch_size", t.batch_size}, {"micro_batch", t.micro_batch},
            {"log_every", t.log_every}, {"eval_every", t.eval_every},
            {"eval_windows", t.eval_windows}, {"checkpoint_every", t.checkpoint_every},
            {"optim", t.optim}};
  if (t.precision != "auto") m["precision"] = t.precision;  // auto keeps the keys of earlier versions
  return m;
}

class Planner {
 public:
  Planner(const Recipe& r, std::string root) : r_(r), root_(std::move(root)) {}

  Plan run() {
    plan_.code_version = code_version();
    int prepares = 0;
    for (const auto& s : r_.stages) prepares += s.kind == "prepare";
    if (prepares != 1) {
      throw ConfigError(r_.file + ": stages: a recipe needs exactly one stage of kind prepare (found " +
                        std::to_string(prepares) + ")");
    }
    for (const StageDef* s : order_stages(r_)) plan_stage(*s);
    return std::move(plan_);
  }

 private:
  size_t add(const StageDef& s, const std::string& label, const std::string& kind, json material,
             std::vector<size_t> deps) {
    PlannedJob j;
    j.stage = label;
    j.stage_name = s.name;
    j.kind = kind;
    for (size_t d : deps) {  // a model can be read twice (an eval's models and its BTM ensemble)
      if (std::find(j.deps.begin(), j.deps.end(), d) == j.deps.end()) j.deps.push_back(d);
    }
    json inputs = json::array();
    for (size_t d : j.deps) inputs.push_back(plan_.jobs[d].key);
    material["kind"] = kind;
    material["inputs"] = inputs;
    j.key = core::sha256_hex(material.dump() + "\n" + plan_.code_version);
    j.dir = root_ + "/jobs/" + j.key.substr(0, 16);
    j.spec = material;
    j.spec["key"] = j.key;
    j.spec["stage"] = label;
    j.threads = s.threads > 0 ? s.threads : r_.threads;
    j.retries = s.retries >= 0 ? s.retries : r_.retries;
    j.spec["threads"] = j.threads;
    j.processes = s.processes;
    j.spec["device"] = s.device.empty() ? r_.device : s.device;  // like threads, not in the key
    plan_.jobs.push_back(std::move(j));
    by_stage_[s.name].push_back(plan_.jobs.size() - 1);
    return plan_.jobs.size() - 1;
  }

  std::vector<size_t> models_of(const StageDef& reader, const std::string& key,
                                const std::string& name) {
    const StageDef* s = r_.find_stage(name);
    if (s->kind == "prepare" || s->kind == "eval") {
      throw stage_error(reader, key, "stage '" + name + "' (" + s->kind + ") produces no model");
    }
    return by_stage_.at(name);
  }

  size_t single_model(const StageDef& reader, const std::string& name) {
    auto ids = models_of(reader, "from", name);
    if (ids.size() != 1) {
      throw stage_error(reader, "from", "stage '" + name + "' produces " + std::to_string(ids.size()) +
                                            " models; this stage reads exactly one");
    }
    return ids[0];
  }

  void plan_stage(const StageDef& s) {
    if (s.kind == "prepare") return plan_prepare(s);
    if (s.kind == "train") return plan_train(s);
    if (s.kind == "branch") return plan_branch(s);
    if (s.kind == "upcycle") return plan_upcycle(s);
    if (s.kind == "command") return plan_command(s);
    return plan_eval(s);
  }

  // One job per model (or one job without models:). The key holds the templates; the spec holds
  // them expanded with this job's paths.
  void plan_command(const StageDef& s) {
    std::vector<size_t> models;
    for (const auto& name : s.models) {
      for (size_t id : models_of(s, "models", name)) models.push_back(id);
    }
    const bool per_model = !models.empty();
    if (!per_model) models.push_back(static_cast<size_t>(-1));
    for (size_t id : models) {
      std::string model = per_model ? plan_.jobs[id].stage : "";
      json m = {{"argv", s.argv}, {"env", s.env}, {"parser", s.parser}, {"results", s.results},
                {"model", model}};
      std::vector<size_t> deps{prepare_};
      if (per_model) deps.push_back(id);
      size_t job = add(s, per_model ? s.name + "/" + model : s.name, "command", m, deps);
      PlannedJob& j = plan_.jobs[job];
      std::map<std::string, std::string> vars = {{"out", j.dir + "/out"},
                                                 {"data_dir", plan_.jobs[prepare_].dir + "/data"},
                                                 {"threads", std::to_string(j.threads)}};
      if (per_model) {
        vars["model"] = model;
        vars["model_dir"] = plan_.jobs[id].dir;
        vars["checkpoint"] = plan_.jobs[id].dir + "/checkpoint";
      }
      json argv = json::array(), env = json::object();
      for (const auto& a : s.argv) argv.push_back(stages::expand_template(a, vars));
      for (const auto& [k, v] : s.env) env[k] = stages::expand_template(v, vars);
      j.spec["argv"] = argv;
      j.spec["env"] = env;
      j.spec["results"] = stages::expand_template(s.results, vars);
      j.spec["out"] = vars["out"];
    }
  }

  void plan_prepare(const StageDef& s) {
    json domains = json::array();
    for (const auto& d : r_.data.domains) {
      json src = json::array();
      for (const auto& x : d.sources) {
        src.push_back({{"pattern", x.pattern}, {"split", x.split}});
        if (x.split == "jsonl") src.back()["text_field"] = x.text_field;
      }
      if (!d.shards.dtype.empty()) {
        domains.push_back({{"name", d.name}, {"shards", {{"dir", d.shards.dir}, {"train", d.shards.train},
                           {"valid", d.shards.valid}, {"test", d.shards.test}, {"dtype", d.shards.dtype}}}});
        continue;
      }
      domains.push_back({{"name", d.name}, {"sources", src}, {"generator", d.generator},
                         {"max_bytes", d.max_bytes}});
    }
    json tokenizer = {{"vocab", r_.data.vocab}, {"model_type", r_.data.tokenizer_type},
                      {"sample_bytes", r_.data.tokenizer_sample_bytes}};
    if (r_.data.tokenizer_kind != "sentencepiece") tokenizer = {{"vocab", r_.data.vocab}, {"kind", r_.data.tokenizer_kind}};
    json m = {{"domains", domains}, {"seed", r_.seed}, {"tokenizer", tokenizer},
              {"valid_fraction", r_.data.valid_fraction}, {"test_fraction", r_.data.test_fraction},
              {"task_examples", r_.data.task_examples}};
    prepare_ = add(s, s.name, "prepare", m, {});
  }

  // Resolves the token budget: given, or matched to another train stage's tokens (data-matched) or
  // training FLOPs (compute-matched, from the models' FLOP accounting; rounded down to whole tokens,
  // so the two differ by less than one step).
  int64_t resolve_tokens(const StageDef& s, const stages::ModelConfig& model) {
    if (s.train.match.empty()) return s.train.tokens;
    const StageDef* target = r_.find_stage(s.train.match);
    if (target->kind != "train") {
      throw stage_error(s, "budget.match", "'" + s.train.match + "' is a " + target->kind +
                                               " stage; match a train stage");
    }
    const PlannedJob& t = plan_.jobs[by_stage_.at(target->name).at(0)];
    if (s.train.match_by == "tokens") return t.spec["tokens"].get<int64_t>();
    // Paper-scale budgets reach 1e20 FLOPs: exact 128-bit integer arithmetic.
    int64_t target_tokens = t.spec["tokens"].get<int64_t>();
    int64_t per_step = tokens_per_step(target->train, t.model);
    __int128 target_flops = static_cast<__int128>((target_tokens + per_step - 1) / per_step) * per_step *
                            stages::count_flops(t.model).training();
    return static_cast<int64_t>(target_flops / stages::count_flops(model).training());
  }

  size_t add_train(const StageDef& s, const std::string& label, const std::map<std::string, double>& mix,
                   std::optional<size_t> init) {
    json m = train_material(s.train);
    m["mix"] = mix;
    m["seed"] = r_.seed;
    std::vector<size_t> deps{prepare_};
    stages::ModelConfig model = r_.model;
    if (init) {
      deps.push_back(*init);
      model = plan_.jobs[*init].model;
    } else {
      m["model"] = stages::to_json(model);
    }
    m["tokens"] = resolve_tokens(s, model);
    if (!s.train.match.empty()) m["budget"] = {{"match", s.train.match}, {"by", s.train.match_by}};
    size_t id = add(s, label, "train", m, deps);
    PlannedJob& j = plan_.jobs[id];
    j.spec["data_dir"] = plan_.jobs[prepare_].dir + "/data";
    if (init) j.spec["init"] = plan_.jobs[*init].dir + "/checkpoint";
    j.produces_model = true;
    j.model = model;
    return id;
  }

  void plan_train(const StageDef& s) {
    for (const auto& [d, w] : s.mix) {
      check_domain(r_, s, "mix", d);
      if (w < 0) throw stage_error(s, "mix." + d, "weight must be >= 0");
    }
    if (s.from.size() > 1) throw stage_error(s, "from", "a train stage reads at most one model");
    std::optional<size_t> init;
    if (!s.from.empty()) init = single_model(s, s.from[0]);
    add_train(s, s.name, s.mix, init);
  }

  void plan_branch(const StageDef& s) {
    if (s.from.size() != 1) throw stage_error(s, "from", "a branch stage reads exactly one model");
    size_t seed = single_model(s, s.from[0]);
    if (!plan_.jobs[seed].model.is_dense()) throw stage_error(s, "from", "branching needs a dense model");
    if (s.domains.empty()) throw stage_error(s, "domains", "list at least one domain");
    auto names = r_.data.domain_names();
    bool has_general = std::find(names.begin(), names.end(), "general") != names.end();
    for (const auto& d : s.domains) {
      check_domain(r_, s, "domains", d);
      std::map<std::string, double> mix{{d, 1.0}};
      if (has_general && d != "general" && s.general_mix > 0) {
        mix = {{d, 1.0 - s.general_mix}, {"general", s.general_mix}};
      }
      add_train(s, s.name + "/" + d, mix, seed);
    }
  }

  void plan_upcycle(const StageDef& s) {
    std::vector<std::string> from = s.from;
    // BAM and BTX mix the seed in as one of the experts by default: a branch's seed joins `from`.
    if (s.include_seed && s.method != "sparse") {
      for (const auto& f : s.from) {
        const StageDef* b = r_.find_stage(f);
        if (b->kind == "branch" && std::find(from.begin(), from.end(), b->from[0]) == from.end()) {
          from.insert(from.begin(), b->from[0]);
        }
      }
    }
    std::vector<size_t> inputs;
    for (const auto& f : from) {
      for (size_t id : models_of(s, "from", f)) {
        if (!plan_.jobs[id].model.is_dense()) {
          throw stage_error(s, "from", "'" + plan_.jobs[id].stage + "' is not a dense model");
        }
        inputs.push_back(id);
      }
    }
    const int64_t n = static_cast<int64_t>(inputs.size());
    if (s.method == "sparse" && n != 1) {
      throw stage_error(s, "from", "sparse upcycling reads one dense model, got " + std::to_string(n));
    }
    if (!s.average_weights.empty() && static_cast<int64_t>(s.average_weights.size()) != n) {
      throw stage_error(s, "average_weights", "has " + std::to_string(s.average_weights.size()) +
                                                  " weights for " + std::to_string(n) + " dense models");
    }
    stages::ModelConfig moe;
    try {
      moe = stages::upcycled_config(s.method, plan_.jobs[inputs[0]].model, s.mixture,
                                    n + s.extra_seed_experts);
    } catch (const std::invalid_argument& e) {
      std::string msg = e.what();
      throw stage_error(s, "", msg + " (upcycling " + std::to_string(n) + " dense models)");
    }
    json m = {{"method", s.method}, {"mixture", stages::to_json(s.mixture)},
              {"shared_kv_init", s.shared_kv_init}, {"average_weights", s.average_weights},
              {"extra_seed_experts", s.extra_seed_experts}, {"virtual_groups", s.virtual_groups},
              {"weight_scaling", s.weight_scaling}, {"seed", r_.seed}};
    size_t id = add(s, s.name, "upcycle", m, inputs);
    PlannedJob& j = plan_.jobs[id];
    json paths = json::array();
    for (size_t in : inputs) paths.push_back(plan_.jobs[in].dir + "/checkpoint");
    j.spec["inputs"] = paths;
    j.produces_model = true;
    j.model = moe;
  }

  void plan_eval(const StageDef& s) {
    std::vector<std::string> domains = s.domains;
    if (domains.size() == 1 && domains[0] == "all") domains = r_.data.domain_names();
    for (const auto& d : domains) check_domain(r_, s, "domains", d);
    std::vector<size_t> deps{prepare_};
    json models = json::array();
    for (const auto& name : s.models) {
      for (size_t id : models_of(s, "models", name)) {
        deps.push_back(id);
        models.push_back({{"name", plan_.jobs[id].stage}, {"checkpoint", plan_.jobs[id].dir + "/checkpoint"}});
      }
    }
    json btm_names = json::array(), btm_paths = json::array();
    for (const auto& name : s.btm) {
      for (size_t id : models_of(s, "btm", name)) {
        if (!plan_.jobs[id].model.is_dense()) {
          throw stage_error(s, "btm", "'" + plan_.jobs[id].stage + "' is not a dense model (BTM ensembles dense experts)");
        }
        deps.push_back(id);
        btm_names.push_back(plan_.jobs[id].stage);
        btm_paths.push_back(plan_.jobs[id].dir + "/checkpoint");
      }
    }
    json m = {{"domains", domains}, {"split", s.split}, {"max_windows", s.max_windows},
              {"max_examples", s.max_examples}, {"max_new_tokens", s.max_new_tokens}};
    json task_files = json::array();  // user task files by content, so an edited file is a new job
    for (const auto& t : s.tasks) {
      task_files.push_back(t == "builtin" ? json(t) : json({{"path", t}, {"sha256", core::sha256_file(t)}}));
    }
    m["tasks"] = task_files;
    json names = json::array();
    for (const auto& mm : models) names.push_back(mm["name"]);
    m["models"] = names;  // names (not paths) in the key; the input keys pin the checkpoints
    m["btm"] = btm_names;
    size_t id = add(s, s.name, "eval", m, deps);
    plan_.jobs[id].spec["models"] = models;
    plan_.jobs[id].spec["ensembles"] = json::array();
    if (!btm_names.empty()) {
      plan_.jobs[id].spec["ensembles"].push_back({{"name", "btm"}, {"checkpoints", btm_paths}});
    }
    plan_.jobs[id].spec["data_dir"] = plan_.jobs[prepare_].dir + "/data";
    plan_.jobs[id].spec["tasks"] = s.tasks;
  }

  const Recipe& r_;
  std::string root_;
  Plan plan_;
  size_t prepare_ = 0;
  std::map<std::string, std::vector<size_t>> by_stage_;
};

}  // namespace

std::string format_flops(double flops) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3e", flops);
  return buf;
}

const PlannedJob* Plan::find(const std::string& label) const {
  for (const auto& j : jobs) {
    if (j.stage == label) return &j;
  }
  return nullptr;
}

std::string code_version() {
  return std::string(core::kVersion) + "+" + core::kGitSha + (core::kGitDirty ? "-dirty" : "");
}

Plan make_plan(const Recipe& recipe) {
  std::string root = std::filesystem::absolute(recipe.root).lexically_normal().string();
  return Planner(recipe, root).run();
}

std::string describe_plan(const Plan& plan) {
  std::ostringstream out;
  out << "code version " << plan.code_version << ", " << plan.jobs.size() << " jobs\n";
  for (const auto& j : plan.jobs) {
    out << "  " << j.stage << "  [" << j.kind << "]  key " << j.key.substr(0, 12);
    if (!j.deps.empty()) {
      out << "  <- ";
      for (size_t i = 0; i < j.deps.size(); ++i) out << (i ? ", " : "") << plan.jobs[j.deps[i]].stage;
    }
    if (j.kind == "train") {
      int64_t per_step = j.spec["batch_size"].get<int64_t>() * j.model.seq_len;
      int64_t tokens = j.spec["tokens"].get<int64_t>();
      int64_t steps = (tokens + per_step - 1) / per_step;
      out << "  tokens " << tokens << " (" << steps << " steps, "
          << format_flops(double(steps * per_step) * double(stages::count_flops(j.model).training()))
          << " training FLOPs)";
      if (j.spec.contains("budget")) {
        out << " matching " << j.spec["budget"]["match"].get<std::string>() << " by "
            << j.spec["budget"]["by"].get<std::string>();
      }
    }
    if (j.produces_model && !j.model.is_dense()) {
      out << "  experts attn " << j.model.attn_experts << " ffn " << j.model.ffn_experts;
    }
    out << "\n      dir " << j.dir << "\n";
  }
  return out.str();
}

}  // namespace upcycle::runner
