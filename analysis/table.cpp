#include "analysis/table.h"

#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace upcycle::analysis {

void check_known(const NamedList& known, const std::string& name, const std::string& kind) {
  std::string list;
  for (const auto& [k, what] : known) {
    if (k == name) return;
    list += (list.empty() ? "" : ", ") + k;
  }
  throw ConfigError("upcycle " + kind + ": unknown " + kind + " '" + name + "' (known: " + list +
                    ")");
}

Stat stat_of(const std::vector<double>& values) {
  Stat s;
  s.n = static_cast<int>(values.size());
  if (s.n == 0) return s;
  for (double v : values) s.mean += v;
  s.mean /= s.n;
  if (s.n > 1) {
    double ss = 0;
    for (double v : values) ss += (v - s.mean) * (v - s.mean);
    s.std = std::sqrt(ss / (s.n - 1));
  }
  return s;
}

std::string stat_text(const Stat& s, int decimals) {
  if (s.n == 0) return "missing";
  char buf[96];
  if (s.n > 1) {
    std::snprintf(buf, sizeof(buf), "%.*f ± %.*f", decimals, s.mean, decimals, s.std);
  } else {
    std::snprintf(buf, sizeof(buf), "%.*f", decimals, s.mean);
  }
  return buf;
}

Table no_rows_table(std::string title, std::string why, std::string hint) {
  Table t;
  t.title = std::move(title);
  t.no_rows = std::move(why);
  t.hint = std::move(hint);
  return t;
}

namespace {

std::string note_line(const std::string& n, Format format, bool first) {
  switch (format) {
    case Format::kLatex:
      return latex_escape(n) + "\\par\n";
    case Format::kHtml:
      return "<p class=\"note\">" + html_escape(n) + "</p>\n";
    default:
      return (first ? "\n" : "") + std::string("- ") + n + "\n";
  }
}

}  // namespace

std::string render_table(const Table& t, Format format) {
  if (format == Format::kCsv || format == Format::kTsv) return render(t.data, format);
  if (format == Format::kJson) {
    nlohmann::json j = {{"title", t.title},
                        {"rows", nlohmann::json::parse(render(t.data, Format::kJson))},
                        {"notes", t.notes}};
    if (t.empty()) j["no_rows"] = t.no_rows;
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  std::string out;
  switch (format) {
    case Format::kMarkdown:
      out += "**" + t.title + "**\n\n";
      break;
    case Format::kLatex:  // a float with the title as caption and the notes below, for a paper
      out +=
          "% needs \\usepackage{booktabs} and \\usepackage{graphicx}\n\\begin{table}[htbp]\n"
          "\\centering\n\\caption{" +
          latex_escape(t.title) + "}\n";
      break;
    case Format::kHtml:
      out += "<h3>" + html_escape(t.title) + "</h3>\n";
      break;
    default:
      out += t.title + "\n\n";
  }
  const bool latex = format == Format::kLatex;
  if (t.empty()) {
    out += note_line("no rows: " + t.no_rows + (t.hint.empty() ? "" : " (" + t.hint + ")"), format,
                     false);
    return latex ? out + "\\end{table}\n" : out;
  }
  if (latex) out += "\\resizebox{\\linewidth}{!}{%\n";
  out += render(t.display, format, t.best);
  if (latex) out += "}\n\\par\\smallskip\n{\\footnotesize\\raggedright\n";
  for (const auto& n : t.notes) out += note_line(n, format, &n == &t.notes.front());
  return latex ? out + "}\n\\end{table}\n" : out;
}

}  // namespace upcycle::analysis
