#include "analysis/tables.h"

#include <map>
#include <vector>

#include "core/error.h"

namespace upcycle::analysis {

std::string latest_run(tracking::Store& store) {
  auto rs = store.select("SELECT name FROM runs ORDER BY COALESCE(updated_at, created_at) DESC, id DESC LIMIT 1");
  return rs.rows.empty() ? "" : std::get<std::string>(rs.rows[0][0]);
}

namespace {

// Rows (model, column, value) pivoted to one row per model and one column per distinct column name;
// `avg` appends the mean over the columns.
tracking::ResultSet pivot(const tracking::ResultSet& rs, bool avg) {
  std::vector<std::string> models, domains;
  std::map<std::pair<std::string, std::string>, double> value;
  for (const auto& row : rs.rows) {
    std::string m = std::get<std::string>(row[0]), d = std::get<std::string>(row[1]);
    if (std::find(models.begin(), models.end(), m) == models.end()) models.push_back(m);
    if (std::find(domains.begin(), domains.end(), d) == domains.end()) domains.push_back(d);
    value[{m, d}] = std::get<double>(row[2]);
  }
  tracking::ResultSet out;
  out.columns.push_back("model");
  for (const auto& d : domains) out.columns.push_back(d);
  if (avg) out.columns.push_back("avg");
  for (const auto& m : models) {
    std::vector<tracking::Cell> row{m};
    double sum = 0;
    int n = 0;
    for (const auto& d : domains) {
      auto it = value.find({m, d});
      if (it == value.end()) {
        row.push_back(std::monostate{});
      } else {
        row.push_back(it->second);
        sum += it->second;
        ++n;
      }
    }
    if (avg) row.push_back(n == static_cast<int>(domains.size()) ? tracking::Cell(sum / n) : tracking::Cell());
    out.rows.push_back(std::move(row));
  }
  return out;
}


}  // namespace

std::string run_or_latest(tracking::Store& store, const std::string& run_name) {
  std::string run = run_name.empty() ? latest_run(store) : run_name;
  if (run.empty()) throw StoreError(store.path() + ": the store has no runs yet");
  return run;
}

tracking::ResultSet perplexity_table(tracking::Store& store, const std::string& run_name) {
  std::string run = run_or_latest(store, run_name);
  auto rs = store.select(
      "SELECT model, substr(task, 5) AS domain, value FROM v_results "
      "WHERE run = ? AND metric = 'ppl' AND task LIKE 'ppl/%' ORDER BY result_id",
      {run});
  if (rs.rows.empty()) throw StoreError(store.path() + ": run '" + run + "' has no perplexity results");
  return pivot(rs, true);
}

tracking::ResultSet downstream_table(tracking::Store& store, const std::string& run_name) {
  std::string run = run_or_latest(store, run_name);
  auto rs = store.select(
      "SELECT model, task || ' ' || metric || CASE WHEN filter = 'none' THEN '' ELSE ',' || filter END, value "
      "FROM v_results WHERE run = ? AND task NOT LIKE 'ppl/%' ORDER BY result_id",
      {run});
  if (rs.rows.empty()) throw StoreError(store.path() + ": run '" + run + "' has no downstream results");
  return pivot(rs, false);
}

}  // namespace upcycle::analysis
