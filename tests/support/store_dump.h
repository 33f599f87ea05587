// Every row of every table of a store as sorted text lines, for "the store did not change" checks.
#pragma once

#include <algorithm>
#include <string>
#include <variant>
#include <vector>

#include "tracking/store.h"

namespace upcycle::testing {

inline std::string cell_text(const tracking::Cell& c) {
  if (std::holds_alternative<std::monostate>(c)) return "NULL";
  if (std::holds_alternative<int64_t>(c)) return std::to_string(std::get<int64_t>(c));
  if (std::holds_alternative<double>(c)) return std::to_string(std::get<double>(c));
  return "'" + std::get<std::string>(c) + "'";
}

inline std::string dump_store(tracking::Store& store) {
  std::string out;
  auto tables = store.select("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
  for (const auto& t : tables.rows) {
    const std::string name = std::get<std::string>(t[0]);
    std::vector<std::string> lines;
    for (const auto& row : store.select("SELECT * FROM \"" + name + "\"").rows) {
      std::string line = name + ":";
      for (const auto& c : row) line += " " + cell_text(c);
      lines.push_back(line);
    }
    std::sort(lines.begin(), lines.end());
    for (const auto& l : lines) out += l + "\n";
  }
  return out;
}

}  // namespace upcycle::testing
