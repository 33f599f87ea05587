#include "analysis/render.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace upcycle::analysis {

Format parse_format(const std::string& name) {
  if (name == "table") return Format::kTable;
  if (name == "md" || name == "markdown") return Format::kMarkdown;
  if (name == "csv") return Format::kCsv;
  if (name == "tsv") return Format::kTsv;
  if (name == "latex" || name == "tex") return Format::kLatex;
  if (name == "json") return Format::kJson;
  throw ConfigError("--format: unknown format '" + name +
                    "' (expected table, md, csv, tsv, latex or json)");
}

bool is_data_format(Format format) {
  return format == Format::kCsv || format == Format::kTsv || format == Format::kJson;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string latex_escape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    // The two non-ASCII signs tables use, in what any LaTeX reads: ± and —.
    if (s.compare(i, 2, "±") == 0) {
      out += "$\\pm$";
      i += 1;
      continue;
    }
    if (s.compare(i, 3, "—") == 0) {
      out += "--";
      i += 2;
      continue;
    }
    switch (c) {
      case '&':
      case '%':
      case '$':
      case '#':
      case '_':
      case '{':
      case '}':
        out += std::string("\\") + c;
        break;
      case '~':
        out += "\\textasciitilde{}";
        break;
      case '^':
        out += "\\textasciicircum{}";
        break;
      case '\\':
        out += "\\textbackslash{}";
        break;
      default:
        out += (static_cast<unsigned char>(c) < 0x20 ? ' ' : c);  // a newline would end a % comment
    }
  }
  return out;
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

std::string csv_quote(const std::string& s, char sep) {
  if (s.find_first_of(std::string(",\"\n\r") + sep) == std::string::npos) return s;
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"') out += '"';
    out += ch;
  }
  return out + "\"";
}

bool is_bold(const std::vector<std::vector<bool>>& bold, size_t r, size_t c) {
  return r < bold.size() && c < bold[r].size() && bold[r][c];
}

// The cells as text, emphasised ones wrapped as `mark` says.
std::vector<std::vector<std::string>> texts(const tracking::ResultSet& rs,
                                            const std::vector<std::vector<bool>>& bold,
                                            const std::string& open, const std::string& close,
                                            std::string (*escape)(const std::string&)) {
  std::vector<std::vector<std::string>> out;
  for (size_t r = 0; r < rs.rows.size(); ++r) {
    std::vector<std::string> row;
    for (size_t c = 0; c < rs.rows[r].size(); ++c) {
      std::string t = escape ? escape(cell_text(rs.rows[r][c])) : cell_text(rs.rows[r][c]);
      row.push_back(is_bold(bold, r, c) ? open + t + close : t);
    }
    out.push_back(std::move(row));
  }
  return out;
}

// UTF-8 aware width: "±" and "—" are one column each.
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

// booktabs rules (\usepackage{booktabs}).
std::string latex(const tracking::ResultSet& rs, const std::vector<std::vector<bool>>& bold) {
  std::ostringstream out;
  out << "\\begin{tabular}{l" << std::string(rs.columns.empty() ? 0 : rs.columns.size() - 1, 'r')
      << "}\n\\toprule\n";
  for (size_t c = 0; c < rs.columns.size(); ++c)
    out << (c ? " & " : "") << latex_escape(rs.columns[c]);
  out << " \\\\\n\\midrule\n";
  for (const auto& row : texts(rs, bold, "\\textbf{", "}", latex_escape)) {
    for (size_t c = 0; c < row.size(); ++c) out << (c ? " & " : "") << row[c];
    out << " \\\\\n";
  }
  out << "\\bottomrule\n\\end{tabular}\n";
  return out.str();
}

std::string html(const tracking::ResultSet& rs, const std::vector<std::vector<bool>>& bold) {
  std::ostringstream out;
  out << "<table>\n<thead><tr>";
  for (const auto& c : rs.columns) out << "<th>" << html_escape(c) << "</th>";
  out << "</tr></thead>\n<tbody>\n";
  for (const auto& row : texts(rs, bold, "<b>", "</b>", html_escape)) {
    out << "<tr>";
    for (const auto& c : row) out << "<td>" << c << "</td>";
    out << "</tr>\n";
  }
  out << "</tbody>\n</table>\n";
  return out.str();
}

std::string markdown(const tracking::ResultSet& rs, const std::vector<std::vector<bool>>& bold,
                     const std::string& open, const std::string& close) {
  const auto cells = texts(rs, bold, open, close, nullptr);
  std::vector<size_t> width(rs.columns.size());
  for (size_t c = 0; c < rs.columns.size(); ++c)
    width[c] = std::max<size_t>(3, display_width(rs.columns[c]));
  for (const auto& row : cells) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], display_width(row[c]));
  }
  std::ostringstream out;
  auto line = [&](const std::vector<std::string>& cells) {
    out << "|";
    for (size_t c = 0; c < cells.size(); ++c) {
      out << " " << cells[c] << std::string(width[c] - display_width(cells[c]), ' ') << " |";
    }
    out << "\n";
  };
  line(rs.columns);
  std::vector<std::string> rule;
  for (size_t w : width) rule.push_back(std::string(w, '-'));
  line(rule);
  for (const auto& row : cells) line(row);
  return out.str();
}

}  // namespace

std::string render(const tracking::ResultSet& rs, Format format,
                   const std::vector<std::vector<bool>>& bold) {
  if (format == Format::kTable) return markdown(rs, bold, "", "*");
  if (format == Format::kMarkdown) return markdown(rs, bold, "**", "**");
  if (format == Format::kLatex) return latex(rs, bold);
  if (format == Format::kHtml) return html(rs, bold);
  if (format == Format::kCsv || format == Format::kTsv) {
    const char sep = format == Format::kCsv ? ',' : '\t';
    std::ostringstream out;
    for (size_t c = 0; c < rs.columns.size(); ++c)
      out << (c ? std::string(1, sep) : "") << csv_quote(rs.columns[c], sep);
    out << "\n";
    for (const auto& row : rs.rows) {
      for (size_t c = 0; c < row.size(); ++c)
        out << (c ? std::string(1, sep) : "") << csv_quote(cell_text(row[c]), sep);
      out << "\n";
    }
    return out.str();
  }
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& row : rs.rows) {
    nlohmann::json o = nlohmann::json::object();
    for (size_t c = 0; c < row.size(); ++c) {
      const auto& cell = row[c];
      if (std::holds_alternative<std::monostate>(cell))
        o[rs.columns[c]] = nullptr;
      else if (auto* i = std::get_if<int64_t>(&cell))
        o[rs.columns[c]] = *i;
      else if (auto* d = std::get_if<double>(&cell))
        o[rs.columns[c]] = *d;
      else
        o[rs.columns[c]] = std::get<std::string>(cell);
    }
    arr.push_back(o);
  }
  // Store text that is not UTF-8 (a value written by another tool) shows as U+FFFD, not an internal
  // error.
  return arr.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

}  // namespace upcycle::analysis
