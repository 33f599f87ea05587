#include "analysis/results.h"

namespace upcycle::analysis {

std::vector<Metric> read_results(tracking::Store& store, const std::string& run) {
  auto rs = store.select(
      "SELECT stage, model, task, metric, filter, value, stderr, n FROM v_results WHERE run = ? "
      "ORDER BY result_id",
      {run});
  std::vector<Metric> out;
  out.reserve(rs.rows.size());
  for (const auto& row : rs.rows) {
    Metric m;
    m.stage = tracking::text_of(row[0]);
    m.model = tracking::text_of(row[1]);
    const core::ResultTask t = core::parse_result_task(tracking::text_of(row[2]));
    m.kind = t.kind;
    m.task = t.task;
    m.domain = t.domain;
    m.split = t.kind == core::ResultKind::kTask ? "" : "test";
    m.name = tracking::text_of(row[3]);
    m.filter = tracking::text_of(row[4]);
    m.value = tracking::number_of(row[5]);
    if (!std::holds_alternative<std::monostate>(row[6]))
      m.stderr_value = tracking::number_of(row[6]);
    const double n = tracking::number_of(row[7]);
    m.count = n == n ? static_cast<int64_t>(n) : 0;  // NaN: none recorded
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<LastMetric> read_last_metrics(tracking::Store& store, const std::string& run) {
  auto rs = store.select(
      "SELECT rj.stage, m.key, m.value FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id "
      "JOIN runs ru ON ru.id = rj.run_id WHERE ru.name = ? AND m.value IS NOT NULL "
      "AND m.step = (SELECT MAX(step) FROM metrics m2 WHERE m2.job_id = m.job_id AND m2.key = "
      "m.key) ORDER BY rj.rowid, m.key",
      {run});
  std::vector<LastMetric> out;
  for (const auto& row : rs.rows) {
    out.push_back(
        {tracking::text_of(row[0]), tracking::text_of(row[1]), tracking::number_of(row[2])});
  }
  return out;
}

}  // namespace upcycle::analysis
