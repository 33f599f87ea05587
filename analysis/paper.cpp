#include "analysis/paper.h"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace upcycle::analysis {
namespace {

const char* const kPaperNumbers =
#include "analysis/paper_numbers.inc"
    ;

}  // namespace

const PaperRow* PaperTable::row_for(const std::string& label) const {
  for (const auto& r : rows) {
    if (std::find(r.ours.begin(), r.ours.end(), label) != r.ours.end()) return &r;
  }
  return nullptr;
}

const PaperRow* PaperTable::reference() const {
  for (const auto& r : rows) {
    if (r.label == reference_row) return &r;
  }
  return nullptr;
}

double PaperTable::average(const PaperRow& row) const {
  if (auto it = row.values.find("avg"); it != row.values.end()) return it->second;
  double sum = 0;
  int n = 0;
  for (const auto& [domain, v] : row.values) {
    if (average_of.empty() ||
        std::find(average_of.begin(), average_of.end(), domain) != average_of.end())
      sum += v, ++n;
  }
  return n ? sum / n : 0;
}

std::optional<PaperTable> paper_table(const std::string& id) {
  static const nlohmann::json all = nlohmann::json::parse(kPaperNumbers);
  const auto& tables = all.at("tables");
  if (!tables.contains(id)) return std::nullopt;
  const auto& j = tables.at(id);
  PaperTable t;
  t.id = id;
  t.source = j.at("source").get<std::string>();
  t.columns = j.at("columns").get<std::map<std::string, std::string>>();
  t.reference_row = j.at("reference_row").get<std::string>();
  t.average_of = j.value("average_of", std::vector<std::string>{});
  t.context = j.value("context", int64_t{0});
  for (const auto& r : j.at("rows")) {
    t.rows.push_back({r.at("label").get<std::string>(),
                      r.at("ours").get<std::vector<std::string>>(),
                      r.at("values").get<std::map<std::string, double>>(),
                      r.value("reasons", std::map<std::string, std::string>{})});
  }
  return t;
}

}  // namespace upcycle::analysis
