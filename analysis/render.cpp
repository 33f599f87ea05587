#include "analysis/render.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace upcycle::analysis {

Format parse_format(const std::string& name) {
  if (name == "table" || name == "md" || name == "markdown") return Format::kTable;
  if (name == "csv") return Format::kCsv;
  if (name == "json") return Format::kJson;
  throw ConfigError("--format: unknown format '" + name + "' (expected table, csv or json)");
}

std::string cell_text(const tracking::Cell& c) {
  if (std::holds_alternative<std::monostate>(c)) return "";
  if (auto* i = std::get_if<int64_t>(&c)) return std::to_string(*i);
  if (auto* d = std::get_if<double>(&c)) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "%.6g", *d);
    return buf;
  }
  return std::get<std::string>(c);
}

namespace {

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

std::string markdown(const tracking::ResultSet& rs) {
  std::vector<size_t> width(rs.columns.size());
  for (size_t c = 0; c < rs.columns.size(); ++c) width[c] = std::max<size_t>(3, rs.columns[c].size());
  for (const auto& row : rs.rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], cell_text(row[c]).size());
  }
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    out << "|";
    for (size_t c = 0; c < cells.size(); ++c) {
      out << " " << cells[c] << std::string(width[c] - cells[c].size(), ' ') << " |";
    }
    out << "\n";
  };
  line(rs.columns);
  std::vector<std::string> rule;
  for (size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& row : rs.rows) {
    std::vector<std::string> cells;
    for (const auto& c : row) cells.push_back(cell_text(c));
    line(cells);
  }
  return out.str();
}

}  // namespace

std::string render(const tracking::ResultSet& rs, Format format) {
  if (format == Format::kTable) return markdown(rs);
  if (format == Format::kCsv) {
    std::ostringstream out;
    for (size_t c = 0; c < rs.columns.size(); ++c) out << (c ? "," : "") << csv_quote(rs.columns[c]);
    out << "\n";
    for (const auto& row : rs.rows) {
      for (size_t c = 0; c < row.size(); ++c) out << (c ? "," : "") << csv_quote(cell_text(row[c]));
      out << "\n";
    }
    return out.str();
  }
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& row : rs.rows) {
    nlohmann::json o = nlohmann::json::object();
    for (size_t c = 0; c < row.size(); ++c) {
      const auto& cell = row[c];
      if (std::holds_alternative<std::monostate>(cell)) o[rs.columns[c]] = nullptr;
      else if (auto* i = std::get_if<int64_t>(&cell)) o[rs.columns[c]] = *i;
      else if (auto* d = std::get_if<double>(&cell)) o[rs.columns[c]] = *d;
      else o[rs.columns[c]] = std::get<std::string>(cell);
    }
    arr.push_back(o);
  }
  return arr.dump(2) + "\n";
}

}  // namespace upcycle::analysis
