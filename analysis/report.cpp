#include "analysis/report.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "analysis/plots.h"
#include "analysis/render.h"
#include "analysis/tables.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/output_dir.h"
#include "core/sha256.h"

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

// Laid out for a 1280 px window (nothing wider than the page: wide tables scroll in their own box,
// long words wrap, images shrink) and for print (no scroll boxes, no page break inside a figure).
const char* kStyle = R"(<style>
*, *::before, *::after { box-sizing: border-box; }
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1, h2, h3, p, li, td, th, figcaption, summary { overflow-wrap: anywhere; }
div.scroll { max-width: 100%; overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead { background: #f0f0f0; }
p.note { font-size: 0.85em; color: #555; margin: 0.2em 0; }
p.missing { color: #a33; }
pre { background: #f7f7f7; padding: 0.8em; overflow-x: auto; font-size: 0.8em; white-space: pre-wrap; }
figure { margin: 1em 0; }
img { max-width: 100%; height: auto; border: 1px solid #ddd; margin: 0.5em 0; }
section.run { border-top: 2px solid #888; margin-top: 2em; }
@media print {
  body { max-width: none; margin: 0; padding: 0; font-size: 10pt; }
  div.scroll { overflow: visible; }
  table { font-size: 7.5pt; }
  figure, table { break-inside: avoid; }
  h2, h3 { break-after: avoid; }
  details { display: none; }
}
</style>
)";

// Loaded images are counted in the page itself, so a browser can say that every plot decoded, and
// the page's laid-out width is recorded beside the window's (a page wider than it scrolls
// sideways).
const char* kImageCheck = R"(<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot'), ok = 0;
  for (var i = 0; i < imgs.length; i++) if (imgs[i].complete && imgs[i].naturalWidth > 0) ok++;
  document.body.setAttribute('data-images', imgs.length);
  document.body.setAttribute('data-images-ok', ok);
  document.body.setAttribute('data-scroll-width', document.documentElement.scrollWidth);
  document.body.setAttribute('data-client-width', document.documentElement.clientWidth);
});
</script>
)";

}  // namespace

std::string report_dir_name(const std::string& run) {
  std::string out;
  for (char c : run.substr(0, 80)) {
    const bool word = std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.';
    out += word && !(out.empty() && c == '.') ? c : '_';  // no leading dot: not "..", not hidden
  }
  // A name changed on the way (exp/seed=1 and exp_seed=1) keeps a directory of its own.
  if (out != run || out.empty()) out += "-" + core::sha256_hex(run).substr(0, 8);
  return out;
}

namespace {

std::string missing(const std::string& what, const std::exception& e) {
  return "<p class=\"missing\">" + html_escape(what) + ": not available (" + html_escape(e.what()) +
         ")</p>\n";
}

std::string tables_html(tracking::Store& store, const std::string& run) {
  std::string out = "<h3>Tables</h3>\n";
  for (const TableDef& def : table_registry()) {
    if (!def.in_report) continue;
    const bool perplexity = def.source == TableSource::kPerplexity;
    for (const char* metric : {"bpb", "ppl"}) {  // bits per byte first: any tokenizer
      if (!perplexity && std::string(metric) == "bpb") continue;
      const Table t = make_table(store, def.name, {run, metric});
      out += t.empty() ? "<p class=\"missing\">" + html_escape(t.title) + ": no rows (" +
                             html_escape(t.no_rows) + ")</p>\n"
                       : "<div class=\"scroll\">" + render_table(t, Format::kHtml) + "</div>\n";
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

namespace {

std::string page_head(const std::string& title) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
         html_escape(title) + "</title>\n" + kStyle + "</head>\n<body>\n";
}

std::string written_note(tracking::Store& store) {
  const std::time_t now = std::time(nullptr);
  char when[64];
  std::strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", std::gmtime(&now));
  return "<p class=\"note\">" + html_escape(store.path()) + ", written " + when + "</p>\n";
}

// OUT_DIR/index.html: every run of the store, linked to its report where OUT_DIR has one.
std::string write_index(tracking::Store& store, const std::string& out_dir) {
  auto runs = store.select(
      "SELECT name, status, tags, COALESCE(updated_at, created_at) FROM runs ORDER BY id DESC");
  std::ostringstream html;
  html << page_head("upcycle reports") << "<h1>upcycle reports</h1>\n"
       << written_note(store)
       << "<div class=\"scroll\"><table>\n<thead><tr><th>run</th><th>status</th><th>tags</th>"
          "<th>updated</th><th>report</th></tr></thead>\n<tbody>\n";
  for (const auto& r : runs.rows) {
    const std::string run = cell_text(r[0]), dir = report_dir_name(run);
    std::error_code ec;
    const bool has = std::filesystem::exists(out_dir + "/" + dir + "/report.html", ec);
    html << "<tr><td>" << html_escape(run) << "</td><td>" << html_escape(cell_text(r[1]))
         << "</td><td>" << html_escape(cell_text(r[2])) << "</td><td>"
         << html_escape(cell_text(r[3])) << "</td><td>"
         << (has ? "<a href=\"" + html_escape(dir) + "/report.html\">report</a>" : "")
         << "</td></tr>\n";
  }
  html << "</tbody>\n</table></div>\n</body>\n</html>\n";
  std::string path = out_dir + "/index.html";
  core::write_file_atomic(path, html.str());
  return path;
}

// OUT_DIR/<run>/report.html and its plots.
std::string write_run_page(tracking::Store& store, const std::string& run,
                           const std::string& out_dir, const core::OutputRules& rules) {
  const std::string dir = out_dir + "/" + report_dir_name(run);
  core::claim_output_collection(dir, rules);
  const std::vector<std::string> group = seed_group(store, run);
  std::ostringstream html;
  html << page_head("upcycle report: run " + run) << "<p class=\"note\"><a href=\"../index.html\">"
       << "all runs</a></p>\n<h1>Run " << html_escape(run) << "</h1>\n"
       << written_note(store);
  if (group.size() > 1) {
    html << "<p class=\"note\">Tables and the loss plot pool " << group.size()
         << " seeds of this sweep point; the other plots show this run.</p>\n";
  }
  html << "<section class=\"run\">\n"
       << tables_html(store, run) << plots_html(store, run, dir + "/plots")
       << provenance_html(store, run) << "</section>\n"
       << kImageCheck << "</body>\n</html>\n";
  std::string path = dir + "/report.html";
  core::write_file_atomic(path, html.str());
  return path;
}

}  // namespace

ReportPaths write_report(tracking::Store& store, const std::vector<std::string>& wanted,
                         const std::string& out_dir) {
  std::vector<std::string> runs;
  for (const auto& r : wanted.empty() ? std::vector<std::string>{""} : wanted) {
    const std::string run = run_or_latest(store, r);
    if (std::find(runs.begin(), runs.end(), run) == runs.end()) runs.push_back(run);
  }
  const core::OutputRules rules{false, {{"the store", store.path()}}};
  core::claim_output_collection(out_dir, rules);
  ReportPaths out;
  for (const auto& run : runs) out.pages.push_back(write_run_page(store, run, out_dir, rules));
  out.index = write_index(store, out_dir);
  return out;
}

}  // namespace upcycle::analysis
