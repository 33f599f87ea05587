#include "runner/resume.h"

#include <filesystem>

#include "core/error.h"

namespace upcycle::runner {

using tracking::text_of;
std::vector<RunPoint> runs_to_resume(tracking::Store& store,
                                     const std::vector<std::string>& names) {
  const char* sql =
      "SELECT r.name, r.sweep_point, p.recipe_text, "
      "       (SELECT j.dir FROM run_jobs rj JOIN jobs j ON j.id = rj.job_id WHERE rj.run_id = "
      "r.id LIMIT 1) "
      "FROM runs r LEFT JOIN provenance p ON p.run_id = r.id ";
  tracking::ResultSet rs;
  if (names.empty()) {
    rs = store.select(std::string(sql) + "WHERE r.status != 'done' ORDER BY r.id");
  } else {
    for (const auto& n : names) {
      auto one = store.select(std::string(sql) + "WHERE r.name = ?", {n});
      if (one.rows.empty()) throw StoreError(store.path() + ": no run named '" + n + "'");
      rs.rows.push_back(one.rows[0]);
    }
  }
  std::vector<RunPoint> points;
  for (const auto& row : rs.rows) {
    const std::string name = text_of(row[0]), recipe_text = text_of(row[2]),
                      job_dir = text_of(row[3]);
    if (recipe_text.empty() || job_dir.empty()) {
      throw StoreError(store.path() + ": run '" + name +
                       "' has no stored recipe or jobs to resume");
    }
    Recipe r = parse_recipe(recipe_text, store.path() + " (run " + name + ")");
    r.run_name = name;
    r.sweep_point = text_of(row[1]);
    r.resolved_yaml = recipe_text;  // the run's key is the hash of exactly this text
    r.store = store.path();
    // Job directories are ROOT/jobs/<key prefix>: the root the run used, wherever we are now.
    r.root = std::filesystem::path(job_dir).parent_path().parent_path().string();
    Plan plan = make_plan(r, local_plan_options());
    points.push_back({std::move(r), std::move(plan)});
  }
  return points;
}

}  // namespace upcycle::runner
