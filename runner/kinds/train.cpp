#include "runner/kinds/train.h"

#include <algorithm>
#include <optional>

#include "core/sha256.h"
#include "runner/kinds/stage_kind.h"
#include "runner/planner.h"
#include "stages/arch/accounting.h"
#include "stages/spec/train.h"

namespace upcycle::runner {
namespace {

void parse_budget(const YamlReader& b, TrainDef& d) {
  b.expect_map({"tokens", "match", "by", "rate"});
  if (b.has("tokens") == b.has("match"))
    throw b.error("give exactly one of tokens: N or match: STAGE");
  d.match_rate.clear();
  if (b.has("tokens")) {
    d.tokens = b.child("tokens").integer();
    d.match.clear();
    if (d.tokens < 1) throw b.child("tokens").error("must be >= 1");
    if (b.has("rate")) throw b.child("rate").error("rate: goes with match: STAGE and by: time");
    return;
  }
  d.tokens = 0;
  d.match = b.child("match").str();
  d.match_by = b.get_choice("by", "tokens", {"tokens", "flops", "time"});
  if (d.match_by == "time") {
    if (!b.has("rate")) {
      throw b.error(
          "by: time needs rate: STAGE, a train stage of this stage's model and batch whose "
          "measured tokens per device-second turn the matched stage's device-seconds into tokens");
    }
    d.match_rate = b.child("rate").str();
  } else if (b.has("rate")) {
    throw b.child("rate").error("rate: goes with by: time");
  }
}

std::string budget_detail(const stages::TrainJobSpec& t, const stages::ModelConfig& m,
                          const TrainDef& d) {
  if (d.match_by == "time" && !d.match.empty()) {
    return "tokens measured when " + d.match + " and " + d.match_rate + " are done: " + d.match +
           "'s device-seconds x " + d.match_rate + "'s tokens per device-second";
  }
  int64_t per_step = t.batch_size * m.seq_len;
  int64_t steps = (t.tokens + per_step - 1) / per_step;
  std::string out =
      "tokens " + std::to_string(t.tokens) + " (" + std::to_string(steps) + " steps, " +
      format_flops(double(steps * per_step) * double(stages::count_flops(m).training())) +
      " training FLOPs)";
  if (!d.match.empty()) out += " matching " + d.match + " by " + d.match_by;
  return out;
}

// The token budget: given, or matched to another train stage's tokens (data-matched) or training
// FLOPs (compute-matched, from the models' FLOP accounting; rounded down to whole tokens, so the
// two differ by less than one step).
int64_t resolve_tokens(const StageDef& s, const TrainDef& d, const stages::ModelConfig& model,
                       const Planner& p) {
  if (d.match.empty()) return d.tokens;
  const StageDef* target = p.recipe().find_stage(d.match);
  if (!target->as<TrainStage>()) {
    throw stage_error(
        s, "budget.match",
        "'" + d.match + "' is a " + target->kind_name() + " stage; match a train stage");
  }
  const PlannedJob& t = p.job(p.models_of(s, "budget.match", d.match).at(0));
  const int64_t target_tokens = t.spec.at("tokens").get<int64_t>();
  if (target_tokens == 0) {
    throw stage_error(s, "budget.match",
                      "'" + d.match +
                          "' has a budget measured at run time (by: time); match a stage whose "
                          "budget is planned");
  }
  if (d.match_by == "time") return 0;  // the job measures it (time_matched_tokens)
  if (d.match_by == "tokens") return target_tokens;
  // Paper-scale budgets reach 1e20 FLOPs: exact 128-bit integer arithmetic.
  const int64_t per_step = t.spec.at("batch_size").get<int64_t>() * t.model.seq_len;
  __int128 target_flops = static_cast<__int128>((target_tokens + per_step - 1) / per_step) *
                          per_step * stages::count_flops(t.model).training();
  return static_cast<int64_t>(target_flops / stages::count_flops(model).training());
}

// budget.by time: the jobs whose device-seconds and throughput the job reads when it starts. The
// rate stage must train this model at this batch, or its throughput is not this job's.
std::vector<size_t> time_match(const StageDef& s, const TrainDef& d,
                               const stages::ModelConfig& model, stages::TrainJobSpec& t,
                               Planner& p) {
  const size_t seconds_of = p.models_of(s, "budget.match", d.match).at(0);
  const StageDef* rate = p.recipe().find_stage(d.match_rate);
  if (!rate->as<TrainStage>()) {
    throw stage_error(
        s, "budget.rate",
        "'" + d.match_rate + "' is a " + rate->kind_name() + " stage; name a train stage");
  }
  const size_t rate_of = p.models_of(s, "budget.rate", d.match_rate).at(0);
  const PlannedJob& r = p.job(rate_of);
  if (stages::to_json(r.model) != stages::to_json(model) ||
      r.spec.at("batch_size").get<int64_t>() != t.batch_size) {
    throw stage_error(s, "budget.rate",
                      "'" + d.match_rate +
                          "' trains another model or batch size than this stage, so its "
                          "throughput is not this stage's",
                      "name a stage that trains the same upcycled model with the same batch_size");
  }
  t.match_seconds_of = p.job(seconds_of).dir;
  t.match_rate_of = r.dir;
  return seconds_of == rate_of ? std::vector<size_t>{seconds_of}
                               : std::vector<size_t>{seconds_of, rate_of};
}

size_t add_train(const StageDef& s, const TrainDef& d, Planner& p, const std::string& label,
                 const std::map<std::string, double>& mix, std::optional<size_t> init) {
  stages::TrainJobSpec t;
  static_cast<stages::TrainSettings&>(t) = d.settings;
  t.mix = mix;
  t.seed = p.recipe().seed;
  t.data_dir = p.data_dir();
  std::vector<size_t> deps{p.data_job()};
  stages::ModelConfig model = p.recipe().model;
  if (init) {
    deps.push_back(*init);
    model = p.job(*init).model;
    t.init_checkpoint = p.job(*init).dir + "/checkpoint";
  } else {
    if (!p.recipe().has_model) {
      throw stage_error(
          s, "from", "trains a model from scratch, and the recipe has no model: section",
          "add model: (the architecture), or train from an imported model with from:");
    }
    t.model = model;
  }
  t.tokens = resolve_tokens(s, d, model, p);
  std::optional<size_t> seconds_of;
  if (d.match_by == "time" && !d.match.empty()) {
    const std::vector<size_t> measured = time_match(s, d, model, t, p);
    seconds_of = measured.front();
    deps.insert(deps.end(), measured.begin(), measured.end());
  }
  size_t id = p.add(s, label, draft(t, p.runtime(s, s.processes)), deps);
  PlannedJob& j = p.job(id);
  j.seconds_of = seconds_of;
  j.produces_model = true;
  j.model = model;
  j.detail = budget_detail(t, model, d);
  const int64_t per_step = t.batch_size * model.seq_len;
  const int64_t steps = (t.tokens + per_step - 1) / per_step;  // whole steps
  j.train_flops = double(steps * per_step) * double(stages::count_flops(model).training());
  // Throughput depends on the model, the batch, the device kind, the precision, ranks and threads.
  nlohmann::json shape = {{"model", stages::to_json(model)},
                          {"batch_size", t.batch_size},
                          {"micro_batch", t.micro_batch},
                          {"numerics", j.keyed.at("spec").at("numerics")},
                          {"precision", j.keyed.at("spec").at("precision")}};
  j.shape = core::sha256_hex(shape.dump()).substr(0, 16);
  return id;
}

// Both kinds need a budget; what is missing is blamed on the stage.
TrainDef parse_stage_train(const YamlReader& r, const Recipe& recipe) {
  TrainDef d = parse_train(r, recipe.train);
  if (d.tokens < 1 && d.match.empty()) {
    throw r.error(
        "needs budget: {tokens: N} or {match: STAGE, by: flops} (here or in the recipe's train:)");
  }
  return d;
}

std::vector<std::string> with_train_keys(std::vector<std::string> keys) {
  keys.insert(keys.end(), train_setting_keys().begin(), train_setting_keys().end());
  return keys;
}

class TrainKind : public StageKind {
 public:
  std::string name() const override { return "train"; }
  std::vector<std::string> keys() const override { return with_train_keys({"from", "mix"}); }
  bool data_parallel() const override { return true; }
  bool produces_models() const override { return true; }

  std::shared_ptr<const StageParams> parse(const YamlReader& r,
                                           const Recipe& recipe) const override {
    auto t = std::make_shared<TrainStage>();
    if (r.has("from")) t->from = r.child("from").strings();
    YamlReader mix = r.child("mix");
    if (!mix.is_map()) throw mix.error("expected a mapping domain -> weight");
    for (const auto& k : mix.keys()) t->mix[k] = mix.child(k).number();
    t->train = parse_stage_train(r, recipe);
    return t;
  }

  std::vector<StageInput> inputs(const StageDef& s) const override {
    const auto& t = *s.as<TrainStage>();
    std::vector<StageInput> in;
    for (const auto& f : t.from) in.push_back({"from", f});
    if (!t.train.match.empty()) in.push_back({"budget.match", t.train.match});
    if (!t.train.match_rate.empty()) in.push_back({"budget.rate", t.train.match_rate});
    return in;
  }

  void plan(const StageDef& s, Planner& p) const override {
    const auto& t = *s.as<TrainStage>();
    for (const auto& [d, w] : t.mix) {
      p.check_domain(s, "mix", d);
      if (w < 0) throw stage_error(s, "mix." + d, "weight must be >= 0");
    }
    if (t.from.size() > 1) throw stage_error(s, "from", "a train stage reads at most one model");
    std::optional<size_t> init;
    if (!t.from.empty()) init = p.single_model(s, t.from[0]);
    add_train(s, t.train, p, s.name, t.mix, init);
  }
};

class BranchKind : public StageKind {
 public:
  std::string name() const override { return "branch"; }
  std::vector<std::string> keys() const override {
    return with_train_keys({"from", "domains", "general_mix"});
  }
  bool data_parallel() const override { return true; }
  bool produces_models() const override { return true; }

  std::shared_ptr<const StageParams> parse(const YamlReader& r,
                                           const Recipe& recipe) const override {
    auto b = std::make_shared<BranchStage>();
    b->from = r.child("from").strings();
    b->domains = r.child("domains").strings();
    b->general_mix = r.get_number("general_mix", b->general_mix);
    if (b->general_mix < 0 || b->general_mix >= 1)
      throw r.child("general_mix").error("must be in [0, 1)");
    b->train = parse_stage_train(r, recipe);
    if (!b->train.match.empty())
      throw r.error("a branch stage needs budget: {tokens: N}; match: is for train stages");
    return b;
  }

  std::vector<StageInput> inputs(const StageDef& s) const override {
    std::vector<StageInput> in;
    for (const auto& f : s.as<BranchStage>()->from) in.push_back({"from", f});
    return in;
  }

  void plan(const StageDef& s, Planner& p) const override {
    const auto& b = *s.as<BranchStage>();
    if (b.from.size() != 1) throw stage_error(s, "from", "a branch stage reads exactly one model");
    size_t seed = p.single_model(s, b.from[0]);
    if (!p.job(seed).model.is_dense())
      throw stage_error(s, "from", "branching needs a dense model");
    if (b.domains.empty()) throw stage_error(s, "domains", "list at least one domain");
    auto names = p.recipe().domain_names();
    bool has_general = std::find(names.begin(), names.end(), "general") != names.end();
    for (const auto& d : b.domains) {
      p.check_domain(s, "domains", d);
      std::map<std::string, double> mix{{d, 1.0}};
      if (has_general && d != "general" && b.general_mix > 0) {
        mix = {{d, 1.0 - b.general_mix}, {"general", b.general_mix}};
      }
      add_train(s, b.train, p, s.name + "/" + d, mix, seed);
    }
  }
};

}  // namespace

const std::vector<std::string>& train_setting_keys() {
  static const std::vector<std::string> kKeys = [] {
    std::vector<std::string> keys = stages::train_settings_fields().names(/*recipe=*/true);
    keys.push_back("budget");
    return keys;
  }();
  return kKeys;
}

TrainDef parse_train(const YamlReader& r, TrainDef d) {
  try {
    stages::read_settings(YamlSource(r), d.settings);
  } catch (const core::FieldError& e) {  // a cross-field rule: at the key it names
    throw spec_error_at(r, e.path(), e.reason());
  }
  if (r.has("budget")) parse_budget(r.child("budget"), d);
  return d;
}

const StageKind& train_kind() {
  static const TrainKind kKind;
  return kKind;
}

const StageKind& branch_kind() {
  static const BranchKind kKind;
  return kKind;
}

}  // namespace upcycle::runner
