#include "analysis/report.h"

#include <ctime>
#include <set>
#include <sstream>

#include "analysis/plots.h"
#include "analysis/render.h"
#include "analysis/tables.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/output_dir.h"

namespace upcycle::analysis {

std::string base64(const std::string& bytes) {
  static const char* kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    uint32_t v = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    if (i + 2 < bytes.size()) v |= static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += i + 2 < bytes.size() ? kAlphabet[v & 63] : '=';
  }
  return out;
}

namespace {

const char* kStyle = R"(<style>
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f0f0f0; }
p.note { font-size: 0.85em; color: #555; margin: 0.2em 0; }
p.missing { color: #a33; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; }
img { max-width: 100%; border: 1px solid #ddd; margin: 0.5em 0; }
section.run { border-top: 2px solid #888; margin-top: 2em; }
</style>
)";

// Loaded images are counted in the page itself, so a browser can say that every plot decoded.
const char* kImageCheck = R"(<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot'), ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-images-ok', ok);
});
</script>
)";

std::string path_word(const std::string& run) {
  std::string out;
  for (char c : run)
    out += std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' ? c : '_';
  return out;
}

std::string missing(const std::string& what, const std::exception& e) {
  return "<p class=\"missing\">" + html_escape(what) + ": not available (" + html_escape(e.what()) +
         ")</p>\n";
}

std::string tables_html(tracking::Store& store, const std::string& run) {
  std::string out = "<h3>Tables</h3>\n";
  const std::pair<const char*, const char*> tables[] = {
      {"ppl", "bpb"}, {"ppl", "ppl"}, {"downstream", "ppl"}, {"nv-upcycling", "ppl"}};
  for (const auto& [name, metric] : tables) {
    try {
      out += render_table(make_table(store, name, run, metric), Format::kHtml);
    } catch (const Error& e) {
      out += missing(
          std::string("table ") + name + (std::string(metric) == "bpb" ? " (bits per byte)" : ""),
          e);
    }
  }
  return out;
}

std::string plots_html(tracking::Store& store, const std::string& run, const std::string& dir) {
  std::string out = "<h3>Plots</h3>\n";
  for (const auto& [name, what] : plot_names()) {
    try {
      PlotOutput p = make_plot(store, name, run, dir);
      out += "<figure><img class=\"plot\" alt=\"" + html_escape(what) +
             "\" src=\"data:image/png;base64," + base64(core::read_file(p.png)) +
             "\"><figcaption>" + html_escape(what) + "</figcaption>\n";
      for (const auto& n : p.notes) out += "<p class=\"note\">" + html_escape(n) + "</p>\n";
      out += "</figure>\n";
    } catch (const Error& e) {
      out += missing("plot " + name, e);
    }
  }
  return out;
}

std::string provenance_html(tracking::Store& store, const std::string& run) {
  std::ostringstream out;
  out << "<h3>Provenance</h3>\n";
  auto p = store.select(
      "SELECT p.git_sha, p.git_dirty, p.binary_sha256, p.data_manifest_sha256, p.torch_version, "
      "p.device, p.host, "
      "p.recipe_hash, p.recipe_text, r.created_at, r.status, r.tags FROM provenance p JOIN runs r "
      "ON r.id = p.run_id "
      "WHERE r.name = ?",
      {run});
  if (p.rows.empty()) {
    out << "<p class=\"missing\">no provenance recorded for this run</p>\n";
  } else {
    const auto& r = p.rows[0];
    tracking::ResultSet kv;
    kv.columns = {"what", "value"};
    const char* names[] = {"git sha",
                           "uncommitted changes",
                           "runner binary sha256",
                           "data manifest sha256",
                           "LibTorch",
                           "device",
                           "host",
                           "recipe sha256"};
    for (size_t i = 0; i < 8; ++i) {
      std::string v = cell_text(r[i]);
      if (i == 1) v = v == "1" ? "yes" : "no";
      kv.rows.push_back({std::string(names[i]), v});
    }
    kv.rows.push_back({std::string("created"), cell_text(r[9])});
    kv.rows.push_back({std::string("status"), cell_text(r[10])});
    kv.rows.push_back({std::string("tags"), cell_text(r[11])});
    out << render(kv, Format::kHtml);
    out << "<details><summary>resolved recipe</summary><pre>" << html_escape(cell_text(r[8]))
        << "</pre></details>\n";
  }
  auto jobs = store.select(
      "SELECT rj.stage, j.kind, j.status, j.attempts, j.host, printf('%.1f', j.wall_s), j.git_sha, "
      "substr(j.binary_sha256, 1, 12), substr(j.key, 1, 16) FROM jobs j JOIN run_jobs rj ON "
      "rj.job_id = j.id "
      "JOIN runs r ON r.id = rj.run_id WHERE r.name = ? ORDER BY rj.rowid",
      {run});
  jobs.columns = {"stage",  "kind",    "status",        "attempts", "host",
                  "wall s", "git sha", "binary sha256", "key"};
  out << "<h4>Jobs</h4>\n" << render(jobs, Format::kHtml);
  return out.str();
}

}  // namespace

std::string write_report(tracking::Store& store, const std::vector<std::string>& wanted,
                         const std::string& out_dir) {
  std::vector<std::string> runs;
  for (const auto& r : wanted.empty() ? std::vector<std::string>{""} : wanted)
    runs.push_back(run_or_latest(store, r));
  core::claim_output_collection(out_dir, {false, {{"the store", store.path()}}});
  std::ostringstream html;
  html << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       << "<title>upcycle report</title>\n"
       << kStyle << "</head>\n<body>\n<h1>upcycle report</h1>\n";
  const std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  html << "<p class=\"note\">" << html_escape(store.path()) << ", written " << when << "</p>\n";
  std::set<std::string> shown;
  for (size_t i = 0; i < runs.size(); ++i) {
    const std::string& run = runs[i];
    if (shown.count(run)) continue;
    const std::vector<std::string> group = seed_group(store, run);
    shown.insert(group.begin(), group.end());
    html << "<section class=\"run\">\n<h2>Run " << html_escape(run) << "</h2>\n";
    if (group.size() > 1) {
      html << "<p class=\"note\">Tables pool " << group.size()
           << " seeds of this sweep point; plots show this run.</p>\n";
    }
    html << tables_html(store, run)
         << plots_html(store, run,
                       out_dir + "/plots/" + std::to_string(i + 1) + "-" + path_word(run))
         << provenance_html(store, run) << "</section>\n";
  }
  html << kImageCheck << "</body>\n</html>\n";
  std::string path = out_dir + "/report.html";
  core::write_file_atomic(path, html.str());
  return path;
}

}  // namespace upcycle::analysis
