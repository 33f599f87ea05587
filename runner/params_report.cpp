#include "runner/params_report.h"

#include <nlohmann/json.hpp>

#include "analysis/render.h"
#include "core/error.h"
#include "stages/model/accounting.h"

namespace upcycle::runner {

std::string params_report(const Plan& plan, const std::string& stage, const std::string& format) {
  if (format != "table" && format != "json") {
    throw ConfigError("--format: unknown format '" + format + "' (expected table or json)");
  }
  tracking::ResultSet rs;
  rs.columns = {"model", "total", "active", "embedding", "attention", "ffn", "routers", "norms"};
  for (const auto& j : plan.jobs) {
    if (!j.produces_model) continue;
    if (!stage.empty() && j.stage != stage && j.stage_name != stage) continue;
    auto p = stages::count_params(j.model);
    rs.rows.push_back({j.stage, p.total, p.active, p.embedding, p.attention, p.ffn, p.routers, p.norms});
  }
  if (rs.rows.empty() && !stage.empty()) {
    throw ConfigError("--stage: '" + stage + "' is not a stage that produces a model");
  }
  return analysis::render(rs, format == "json" ? analysis::Format::kJson : analysis::Format::kTable);
}

}  // namespace upcycle::runner
