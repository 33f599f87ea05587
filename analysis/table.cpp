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

std::string render_table(const Table& t, Format format) {
  if (format == Format::kCsv) return render(t.data, format);
  if (format == Format::kJson) {
    nlohmann::json j = {{"title", t.title},
                        {"rows", nlohmann::json::parse(render(t.data, Format::kJson))},
                        {"notes", t.notes}};
    return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  }
  std::string out;
  switch (format) {
    case Format::kMarkdown:
      out += "**" + t.title + "**\n\n";
      break;
    case Format::kLatex:
      out += "% " + latex_escape(t.title) + "\n";
      break;
    case Format::kHtml:
      out += "<h3>" + html_escape(t.title) + "</h3>\n";
      break;
    default:
      out += t.title + "\n\n";
  }
  out += render(t.display, format, t.best);
  for (const auto& n : t.notes) {
    switch (format) {
      case Format::kLatex:
        out += "% " + latex_escape(n) + "\n";
        break;
      case Format::kHtml:
        out += "<p class=\"note\">" + html_escape(n) + "</p>\n";
        break;
      default:
        out += (&n == &t.notes.front() ? "\n" : "") + std::string("- ") + n + "\n";
    }
  }
  return out;
}

}  // namespace upcycle::analysis
