#include "runner/plan_status.h"

#include <map>

#include "core/job_files.h"

namespace upcycle::runner {
namespace {

void flatten(const nlohmann::json& j, const std::string& at,
             std::map<std::string, std::string>& out) {
  if (j.is_object() && !j.empty()) {
    for (const auto& [k, v] : j.items()) flatten(v, at.empty() ? k : at + "." + k, out);
  } else if (j.is_array() && !j.empty()) {
    for (size_t i = 0; i < j.size(); ++i) flatten(j[i], at + "[" + std::to_string(i) + "]", out);
  } else {
    out[at] = j.dump();
  }
}

// An input key that changed is named by the stage that produces it.
std::string field_label(const std::string& field, const Plan& plan, const PlannedJob& j) {
  if (field.rfind("inputs[", 0) != 0) return field.rfind("spec.", 0) == 0 ? field.substr(5) : field;
  size_t i = std::stoul(field.substr(7));
  return i < j.deps.size() ? "input " + plan.jobs[j.deps[i]].stage : "inputs";
}

std::string changed_line(const Plan& plan, const PlannedJob& j, const std::string& old_config) {
  nlohmann::json old = nlohmann::json::parse(old_config, nullptr, false);
  if (old.is_discarded() || !old.contains("version")) {
    return "will run: changed (its last run was planned by an upcycle before output versions)";
  }
  std::string list;
  size_t n = 0;
  for (const auto& f : differing_fields(old, j.keyed)) {
    if (++n <= 6) list += (list.empty() ? "" : ", ") + field_label(f, plan, j);
  }
  if (n > 6) list += ", and " + std::to_string(n - 6) + " more";
  return "will run: changed since its last run (" + list + ")";
}

}  // namespace

std::vector<std::string> differing_fields(const nlohmann::json& a, const nlohmann::json& b) {
  std::map<std::string, std::string> fa, fb;
  flatten(a, "", fa);
  flatten(b, "", fb);
  std::vector<std::string> out;
  for (const auto& [k, v] : fa) {
    auto it = fb.find(k);
    if (it == fb.end() || it->second != v) out.push_back(k);
  }
  for (const auto& [k, v] : fb) {
    if (!fa.count(k)) out.push_back(k);
  }
  return out;
}

std::vector<std::string> explain_plan(const Plan& plan, tracking::Store* store) {
  std::vector<std::string> lines;
  for (const auto& j : plan.jobs) {
    auto result = core::read_job_result(j.dir);
    if (result && result->status == "done" && result->key == j.key) {
      lines.push_back("complete: skipped");
      continue;
    }
    if (!store) {
      lines.push_back("will run: never run");
      continue;
    }
    auto row = store->find_job(j.key);
    if (row && row->status == core::JobStatus::kDone) {
      lines.push_back("will run: done in the store, but " + j.dir + "/result.json is missing");
      continue;
    }
    auto last = store->select(
        "SELECT config FROM jobs WHERE stage = ? AND key != ? ORDER BY id DESC LIMIT 1",
        {j.stage, j.key});
    if (last.rows.empty()) {
      lines.push_back(row ? "will run: planned before, never finished" : "will run: never run");
      continue;
    }
    lines.push_back(changed_line(plan, j, tracking::text_of(last.rows[0][0])));
  }
  return lines;
}

}  // namespace upcycle::runner
