#include "runner/plan.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/utf8.h"
#include "runner/kinds/stage_kind.h"
#include "runner/planner.h"
#include "runner/yaml_reader.h"

namespace upcycle::runner {
namespace {

std::string unknown_stage_message(const std::string& name, const Recipe& r) {
  std::vector<std::string> names;
  for (const auto& s : r.stages) names.push_back(s.name);
  std::string guess = closest_match(name, names);
  return "unknown stage '" + name + "'" + (guess.empty() ? "" : "; did you mean '" + guess + "'?");
}

// Orders stages so inputs come first; rejects unknown names and cycles. Iterative (an explicit
// stack), so a long chain of stages cannot exhaust the call stack.
std::vector<const StageDef*> order_stages(const Recipe& r) {
  std::vector<const StageDef*> order;
  std::map<std::string, int> state;  // 0 new, 1 on the path, 2 done
  for (const auto& root : r.stages) {
    std::vector<std::pair<const StageDef*, size_t>> path{{&root, 0}};  // stage, next input to visit
    if (state[root.name] == 2) continue;
    state[root.name] = 1;
    while (!path.empty()) {
      auto& [s, next] = path.back();
      const std::vector<StageInput> in = s->kind->inputs(*s);
      if (next == in.size()) {
        state[s->name] = 2;
        order.push_back(s);
        path.pop_back();
        continue;
      }
      const StageInput& input = in[next++];
      const StageDef* dep = r.find_stage(input.stage);
      if (!dep) throw stage_error(*s, input.key, unknown_stage_message(input.stage, r));
      if (state[dep->name] == 1) {
        std::string cycle;
        auto from =
            std::find_if(path.begin(), path.end(), [&](const auto& p) { return p.first == dep; });
        for (auto it = from; it != path.end(); ++it) cycle += it->first->name + " -> ";
        throw stage_error(*s, "", "stages form a cycle: " + cycle + dep->name);
      }
      if (state[dep->name] == 0) {
        state[dep->name] = 1;
        path.push_back({dep, 0});
      }
    }
  }
  return order;
}

}  // namespace

ConfigError stage_error(const StageDef& s, const std::string& key, const std::string& msg,
                        const std::string& hint) {
  return ConfigError(
      s.location + ": stages." + s.name + (key.empty() ? "" : "." + key) + ": " + msg, hint);
}

Planner::Planner(const Recipe& r, std::string root, PlanOptions options)
    : r_(r), root_(std::move(root)), options_(options) {}

Plan Planner::run() {
  int data_stages = 0;
  for (const auto& s : r_.stages) data_stages += s.kind->provides_data();
  if (data_stages != 1) {
    throw ConfigError(r_.file +
                      ": stages: a recipe needs exactly one stage of kind prepare (found " +
                      std::to_string(data_stages) + ")");
  }
  // The data stage reads nothing, so planning it first keeps the order topological.
  std::vector<const StageDef*> order = order_stages(r_);
  std::stable_partition(order.begin(), order.end(),
                        [](const StageDef* s) { return s->kind->provides_data(); });
  for (const StageDef* s : order) {
    try {
      s->kind->plan(*s, *this);
    } catch (
        const core::FieldError& e) {  // a job spec the job would refuse: refused now, at the stage
      throw stage_error(*s, e.path(), e.reason());
    }
  }
  return std::move(plan_);
}

std::string Planner::key_of(const JobDraft& d, const std::vector<size_t>& deps) const {
  std::vector<std::string> inputs;
  for (size_t i : deps) inputs.push_back(job(i).key);
  return stages::content_key(d.kind, d.version, d.material, inputs);
}

size_t Planner::add(const StageDef& s, const std::string& label, const JobDraft& d,
                    const std::vector<size_t>& deps) {
  if (const PlannedJob* other = plan_.find(label)) {
    throw stage_error(
        s, "",
        "its job '" + label + "' has the label of a job of stage '" + other->stage_name + "'",
        "rename one of the stages");
  }
  PlannedJob j;
  j.stage = label;
  j.stage_name = s.name;
  j.kind = d.kind;
  j.version = d.version;
  for (size_t dep : deps) {  // a model can be read twice (an eval's models and its BTM ensemble)
    if (std::find(j.deps.begin(), j.deps.end(), dep) == j.deps.end()) j.deps.push_back(dep);
  }
  std::vector<std::string> inputs;
  for (size_t dep : j.deps) inputs.push_back(job(dep).key);
  j.key = stages::content_key(d.kind, d.version, d.material, inputs);
  j.keyed = {{"kind", d.kind}, {"version", d.version}, {"spec", d.material}, {"inputs", inputs}};
  j.dir = dir_of(j.key);
  j.spec = d.fields;
  stages::write_envelope(j.spec, {d.kind, d.version, j.key, label, inputs}, d.runtime);
  j.threads = d.runtime.threads;
  j.processes = d.runtime.world_size;
  j.retries = s.retries >= 0 ? s.retries : r_.retries;
  j.slurm = s.slurm;
  plan_.jobs.push_back(std::move(j));
  by_stage_[s.name].push_back(plan_.jobs.size() - 1);
  return plan_.jobs.size() - 1;
}

stages::JobRuntime Planner::runtime(const StageDef& s, int world_size) const {
  std::string device = s.device.empty() ? r_.device : s.device;
  // auto: CUDA where the job will run has it (on Slurm: the stage asks for GPUs).
  const bool cuda = r_.executor == "slurm" ? s.slurm.gpus_per_node > 0 : options_.cuda;
  if (device == "auto") device = cuda ? "cuda" : "cpu";
  return {s.threads > 0 ? s.threads : r_.threads, device, world_size};
}

size_t Planner::data_job() const {
  if (data_job_ == static_cast<size_t>(-1))
    throw InternalError("planner: the prepare stage is not planned yet");
  return data_job_;
}

std::vector<size_t> Planner::models_of(const StageDef& reader, const std::string& key,
                                       const std::string& name) const {
  const StageDef* s = r_.find_stage(name);
  if (!s) throw stage_error(reader, key, unknown_stage_message(name, r_));
  if (!s->kind->produces_models()) {
    throw stage_error(reader, key,
                      "stage '" + name + "' (" + s->kind_name() + ") produces no model");
  }
  return by_stage_.at(name);
}

size_t Planner::single_model(const StageDef& reader, const std::string& name) const {
  auto ids = models_of(reader, "from", name);
  if (ids.size() != 1) {
    throw stage_error(reader, "from",
                      "stage '" + name + "' produces " + std::to_string(ids.size()) +
                          " models; this stage reads exactly one");
  }
  return ids[0];
}

void Planner::check_domain(const StageDef& s, const std::string& key, const std::string& d) const {
  auto names = r_.domain_names();
  if (std::find(names.begin(), names.end(), d) == names.end()) {
    std::string guess = closest_match(d, names);
    throw stage_error(s, key,
                      "domain '" + d + "' is not in data.domains" +
                          (guess.empty() ? "" : "; did you mean '" + guess + "'?"));
  }
}

std::string format_flops(double flops) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3e", flops);
  return buf;
}

std::string format_si(double x, const std::string& unit) {
  const char* prefix[] = {"", "k", "M", "G", "T", "P", "E", "Z"};
  int i = 0;
  while (std::abs(x) >= 1000 && i < 7) {
    x /= 1000;
    ++i;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g%s", x, prefix[i]);
  return buf + unit;
}

const PlannedJob* Plan::find(const std::string& label) const {
  for (const auto& j : jobs) {
    if (j.stage == label) return &j;
  }
  return nullptr;
}

Plan make_plan(const Recipe& recipe, const PlanOptions& options) {
  std::string root = std::filesystem::absolute(recipe.root).lexically_normal().string();
  // Job directories go into spec.json and the store as text: a root that is not UTF-8 (a working
  // directory with such a name) would fail there, inside the JSON writer.
  if (core::invalid_utf8_at(root) != core::kValidUtf8) {
    throw ConfigError(
        "root: the job directory " + root + " is not valid UTF-8 (the working directory's path?)",
        "run from a directory whose path is UTF-8, or set root: to one");
  }
  return Planner(recipe, root, options).run();
}

std::string describe_plan(const Plan& plan, const std::vector<std::string>& why) {
  std::ostringstream out;
  out << plan.jobs.size() << " jobs\n";
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& j = plan.jobs[i];
    out << "  " << j.stage << "  [" << j.kind << " v" << j.version << "]  key "
        << j.key.substr(0, 12);
    if (!j.deps.empty()) {
      out << "  <- ";
      for (size_t d = 0; d < j.deps.size(); ++d)
        out << (d ? ", " : "") << plan.jobs[j.deps[d]].stage;
    }
    if (!j.detail.empty()) out << "  " << j.detail;
    if (i < why.size()) out << "\n      " << why[i];
    out << "\n      dir " << j.dir << "\n";
  }
  return out.str();
}

}  // namespace upcycle::runner
