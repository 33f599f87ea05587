#include "analysis/compare.h"

#include <algorithm>
#include <map>
#include <tuple>

#include "analysis/query.h"
#include "core/error.h"
#include "core/suggest.h"

namespace upcycle::analysis {

using tracking::text_of;
namespace {

using Cell = tracking::Cell;

void check_runs(tracking::Store& store, const std::vector<std::string>& runs) {
  if (runs.size() < 2) throw ConfigError("upcycle compare: give two or more runs");
  std::vector<std::string> known;
  for (const auto& row : store.select("SELECT name FROM runs ORDER BY id").rows)
    known.push_back(text_of(row[0]));
  for (const auto& r : runs) {
    if (std::find(known.begin(), known.end(), r) != known.end()) continue;
    std::string guess = core::closest_match(r, known);
    throw StoreError(store.path() + ": no run named '" + r + "'" +
                         (guess.empty() ? "" : "; did you mean '" + guess + "'?"),
                     "`upcycle status` and `upcycle query` list runs");
  }
}

}  // namespace

tracking::ResultSet compare_results(tracking::Store& store, const std::vector<std::string>& runs,
                                    const std::string& where) {
  check_runs(store, runs);
  CompiledQuery q = compile_query(where);
  auto rs = store.select(q.sql, q.binds);
  auto col = [&](const std::string& name) {
    return static_cast<size_t>(std::find(rs.columns.begin(), rs.columns.end(), name) -
                               rs.columns.begin());
  };
  const size_t c_run = col("run"), c_model = col("model"), c_task = col("task"),
               c_metric = col("metric"), c_filter = col("filter"), c_value = col("value");
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  std::vector<Key> order;
  std::map<Key, std::vector<Cell>> values;
  for (const auto& row : rs.rows) {
    auto it = std::find(runs.begin(), runs.end(), text_of(row[c_run]));
    if (it == runs.end()) continue;
    Key k{text_of(row[c_model]), text_of(row[c_task]), text_of(row[c_metric]),
          text_of(row[c_filter])};
    if (!values.count(k)) {
      order.push_back(k);
      values[k].assign(runs.size(), std::monostate{});
    }
    values[k][static_cast<size_t>(it - runs.begin())] = row[c_value];
  }
  tracking::ResultSet out;
  out.columns = {"model", "task", "metric", "filter"};
  out.columns.insert(out.columns.end(), runs.begin(), runs.end());
  for (const auto& k : order) {
    std::vector<Cell> row{std::get<0>(k), std::get<1>(k), std::get<2>(k), std::get<3>(k)};
    row.insert(row.end(), values[k].begin(), values[k].end());
    out.rows.push_back(std::move(row));
  }
  return out;
}

tracking::ResultSet compare_params(tracking::Store& store, const std::vector<std::string>& runs) {
  check_runs(store, runs);
  std::map<std::string, std::vector<Cell>> by_key;
  for (size_t i = 0; i < runs.size(); ++i) {
    auto rs = store.select(
        "SELECT p.key, p.value FROM params p JOIN runs r ON r.id = p.run_id WHERE r.name = ?",
        {runs[i]});
    for (const auto& row : rs.rows) {
      auto& v = by_key[text_of(row[0])];
      if (v.empty()) v.assign(runs.size(), std::monostate{});
      v[i] = row[1];
    }
  }
  tracking::ResultSet out;
  out.columns = {"param"};
  out.columns.insert(out.columns.end(), runs.begin(), runs.end());
  for (const auto& [key, vals] : by_key) {  // sorted by key
    const Cell& first = vals[0];
    if (std::all_of(vals.begin(), vals.end(), [&](const Cell& c) { return c == first; })) continue;
    std::vector<Cell> row{key};
    row.insert(row.end(), vals.begin(), vals.end());
    out.rows.push_back(std::move(row));
  }
  return out;
}

}  // namespace upcycle::analysis
