#include "analysis/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/table.h"
#include "analysis/tables.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/output_dir.h"
#include "core/process.h"
#include "stages/arch/accounting.h"
#include "stages/arch/config.h"

namespace upcycle::analysis {
namespace {}  // namespace

// Single-quoted pieces, in which gnuplot interprets nothing but '' (no backquotes, no macros, no
// escapes), joined by gnuplot's string concatenation with double-quoted octal escapes for the
// control characters, which a single-quoted string cannot hold (a newline would end the command
// there).
std::string gnuplot_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '\'') {
      out += "''";
    } else if (u < 0x20 || u == 0x7f) {
      char esc[16];
      std::snprintf(esc, sizeof(esc), "'.\"\\%03o\".'", u);
      out += esc;
    } else {
      out += c;
    }
  }
  return out + "'";
}

namespace {

std::string gq(const std::string& s) { return gnuplot_quote(s); }

struct Curve {
  std::string stage, dir;
  std::vector<std::pair<double, double>> loss, val;  ///< (tokens, value)
};

// Loss curves of every train job of `run`, in plan order.
std::vector<Curve> curves(tracking::Store& store, const std::string& run) {
  auto rs = store.select(
      "SELECT rj.stage, j.dir, m.step, m.key, m.value FROM metrics m JOIN jobs j ON j.id = "
      "m.job_id "
      "JOIN run_jobs rj ON rj.job_id = j.id JOIN runs ru ON ru.id = rj.run_id "
      "WHERE ru.name = ? AND m.key IN ('loss', 'val_loss', 'tokens') ORDER BY rj.rowid, m.step",
      {run});
  std::vector<Curve> out;
  std::map<int64_t, std::map<std::string, double>> steps;
  auto flush = [&] {
    for (const auto& [step, kv] : steps) {
      auto tok = kv.find("tokens");
      if (tok == kv.end()) continue;
      if (auto l = kv.find("loss"); l != kv.end())
        out.back().loss.emplace_back(tok->second, l->second);
      if (auto v = kv.find("val_loss"); v != kv.end())
        out.back().val.emplace_back(tok->second, v->second);
    }
    steps.clear();
  };
  for (const auto& row : rs.rows) {
    const std::string stage = tracking::text_of(row[0]);
    if (out.empty() || out.back().stage != stage) {
      if (!out.empty()) flush();
      out.push_back({stage, tracking::text_of(row[1]), {}, {}});
    }
    const double step =
        tracking::number_of(row[2]);  // an integer, unless another tool wrote the row
    if (std::isfinite(step))
      steps[static_cast<int64_t>(step)][tracking::text_of(row[3])] = tracking::number_of(row[4]);
  }
  if (!out.empty()) flush();
  return out;
}

// Training FLOPs per token of the model a train job produced (its checkpoint's config.json), or 0.
double training_flops_per_token(const std::string& job_dir) {
  try {
    const auto cfg = nlohmann::json::parse(core::read_file(job_dir + "/checkpoint/config.json"));
    return static_cast<double>(
        stages::count_flops(stages::model_config_from_json(cfg.at("model"))).training());
  } catch (const std::exception&) {
    return 0;
  }
}

struct Script {
  std::string data;  ///< NAME.dat
  std::string body;  ///< settings and the plot command, without terminal and output
};

Script loss_plot(tracking::Store& store, const std::string& run, bool by_flops,
                 std::vector<std::string>& notes) {
  std::vector<Curve> cs = curves(store, run);
  if (cs.empty()) throw StoreError(store.path() + ": run '" + run + "' has no training metrics");
  Script s;
  std::ostringstream data, plot;
  int index = 0;
  for (const auto& c : cs) {
    const double scale = by_flops ? training_flops_per_token(c.dir) : 1;
    if (scale == 0) {
      notes.push_back(c.stage + ": no checkpoint config to count its FLOPs; left out");
      continue;
    }
    data << "# " << c.stage << " loss\n";
    for (const auto& [x, y] : c.loss) data << x * scale << " " << y << "\n";
    data << "\n\n# " << c.stage << " val_loss\n";
    for (const auto& [x, y] : c.val) data << x * scale << " " << y << "\n";
    data << "\n\n";
    plot << (index ? ", \\\n     " : "plot ") << "DATA index " << 2 * index
         << " using 1:2 with lines lw 2 lc " << index + 1 << " title " << gq(c.stage)
         << ", DATA index " << 2 * index + 1 << " using 1:2 with points pt 7 ps 0.8 lc "
         << index + 1 << " notitle";
    ++index;
  }
  if (index == 0)
    throw StoreError(store.path() + ": run '" + run +
                     "': no train stage has a model config to count FLOPs");
  s.data = data.str();
  s.body = std::string("set title ") +
           gq("run " + run + ": training loss (lines), validation loss (points)") +
           " noenhanced\nset xlabel " + (by_flops ? "'training FLOPs'" : "'tokens'") +
           "\nset ylabel 'loss (nats per token)'\nset key top right noenhanced\nset grid\n" +
           (by_flops ? "set logscale x\nset format x '%.0e'\n" : "") + plot.str() + "\n";
  notes.push_back("tokens and FLOPs count from the start of each stage");
  return s;
}

Script ppl_plot(tracking::Store& store, const std::string& run) {
  const Table t = perplexity_table(store, run);
  // Rows of data: one per model; columns mean, std per domain. Plotted as groups by domain.
  std::vector<std::string> domains;
  for (size_t c = 1; c < t.data.columns.size(); ++c) {
    const std::string& col = t.data.columns[c];
    if (col == "avg") break;
    if (col.size() < 4 || col.compare(col.size() - 4, 4, "_std") != 0) domains.push_back(col);
  }
  std::vector<const std::vector<tracking::Cell>*> models;
  for (const auto& row : t.data.rows) {
    if (!tracking::text_of(row[0]).empty()) models.push_back(&row);
  }
  std::ostringstream data, plot;
  data << "# domain";
  for (const auto* m : models) data << " " << tracking::text_of((*m)[0]) << " std";
  data << "\n";
  for (size_t d = 0; d < domains.size(); ++d) {
    data << domains[d];
    for (const auto* m : models) {
      const double mean = tracking::number_of((*m)[1 + 2 * d]),
                   std = tracking::number_of((*m)[2 + 2 * d]);
      data << " " << mean << " " << (std::isnan(std) ? 0.0 : std);  // one seed: no error bar
    }
    data << "\n";
  }
  for (size_t i = 0; i < models.size(); ++i) {
    plot << (i ? ", \\\n     " : "plot ") << "DATA using " << 2 + 2 * i << ":" << 3 + 2 * i
         << (i == 0 ? ":xtic(1)" : "") << " title " << gq(tracking::text_of((*models[i])[0]));
  }
  Script s;
  s.data = data.str();
  s.body =
      "set title " +
      gq("run " + run + ": test perplexity per domain (error bars: std across seeds)") +
      " noenhanced\nset style data histogram\nset style histogram errorbars gap 2 lw 1\n"
      "set style fill solid 0.7 border -1\nset ylabel 'perplexity'\nset key top left noenhanced\n"
      "set grid ytics\nset yrange [0:*]\nset xtics noenhanced\n" +
      plot.str() + "\n";
  return s;
}

// One heatmap panel: rows "domain lL" (or "lL"), columns experts, cells fractions.
struct Heatmap {
  std::string title;
  std::vector<std::string> rows;
  std::map<std::pair<size_t, int>, double> cells;  ///< (row, expert) -> value
  int experts = 0;
  void add(const std::string& row, int expert, double v) {
    size_t r = std::find(rows.begin(), rows.end(), row) - rows.begin();
    if (r == rows.size()) rows.push_back(row);
    cells[{r, expert}] = v;
    experts = std::max(experts, expert + 1);
  }
};

// Per-domain routing the eval job recorded for `model` (routing/<domain>, <ffn|attn>/l<L>/e<E>).
std::vector<Heatmap> eval_routing(tracking::Store& store, const std::string& run,
                                  std::string& model) {
  auto rs = store.select(
      "SELECT model, substr(task, 9), metric, value FROM v_results WHERE run = ? "
      "AND task LIKE 'routing/%' ORDER BY result_id",
      {run});
  if (model.empty()) {
    for (const auto& row : rs.rows) model = tracking::text_of(row[0]);  // the last model evaluated
  }
  Heatmap ffn{"FFN router: fraction of tokens per expert", {}, {}, 0};
  Heatmap attn{"attention router: mean gate per expert", {}, {}, 0};
  for (const auto& row : rs.rows) {
    if (tracking::text_of(row[0]) != model) continue;
    char router[8] = {0};
    int l = -1, e = -1;
    if (std::sscanf(tracking::text_of(row[2]).c_str(), "%4[a-z]/l%d/e%d", router, &l, &e) != 3)
      continue;
    Heatmap& h = std::string(router) == "attn" ? attn : ffn;
    h.add(tracking::text_of(row[1]) + " l" + std::to_string(l), e, tracking::number_of(row[3]));
  }
  std::vector<Heatmap> out;
  for (auto* h : {&ffn, &attn}) {
    if (!h->rows.empty()) out.push_back(std::move(*h));
  }
  return out;
}

// Training-time FFN utilisation (util/l<L>/e<E>, the last logged value) of train stage `stage`.
std::vector<Heatmap> training_routing(tracking::Store& store, const std::string& run,
                                      std::string& stage) {
  auto rs = store.select(
      "SELECT rj.stage, m.key, m.value FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id "
      "JOIN runs ru ON ru.id = rj.run_id WHERE ru.name = ? AND m.key LIKE 'util/l%' "
      "AND m.step = (SELECT MAX(step) FROM metrics m2 WHERE m2.job_id = m.job_id AND m2.key = "
      "m.key) "
      "ORDER BY rj.rowid, m.key",
      {run});
  if (stage.empty()) {
    for (const auto& row : rs.rows) stage = tracking::text_of(row[0]);
  }
  Heatmap h{"FFN router while training: fraction of tokens per expert", {}, {}, 0};
  for (const auto& row : rs.rows) {
    int l = -1, e = -1;
    if (tracking::text_of(row[0]) != stage) continue;
    if (std::sscanf(tracking::text_of(row[1]).c_str(), "util/l%d/e%d", &l, &e) != 2) continue;
    h.add("l" + std::to_string(l), e, tracking::number_of(row[2]));
  }
  if (h.rows.empty()) return {};
  return {h};
}

Script util_plot(tracking::Store& store, const std::string& run, const std::string& want,
                 std::vector<std::string>& notes) {
  std::string model = want;
  std::vector<Heatmap> maps = eval_routing(store, run, model);
  if (maps.empty()) {
    model = want;
    maps = training_routing(store, run, model);
    if (!maps.empty())
      notes.push_back(
          "from training metrics: this run's eval recorded no routing (eval before output version "
          "2)");
  }
  if (maps.empty()) {
    throw StoreError(
        store.path() + ": run '" + run + "' has no expert routing" +
            (want.empty() ? "" : " for '" + want + "'"),
        "routing is recorded for mixture models: by their train stages and by eval per domain");
  }
  std::ostringstream data, plot;
  plot << "set multiplot layout 1," << maps.size() << " title "
       << gq("run " + run + ", model " + model)
       << " noenhanced\nset xlabel 'expert'\nset xtics 1\nset cbrange [0:*]\nset palette "
          "rgbformulae 33,13,10\n"
       << "unset key\n";
  for (size_t m = 0; m < maps.size(); ++m) {
    const Heatmap& h = maps[m];
    for (size_t r = 0; r < h.rows.size(); ++r) {
      for (int e = 0; e < h.experts; ++e) {
        auto it = h.cells.find({r, e});
        data << e << " " << r << " " << (it == h.cells.end() ? 0.0 : it->second) << "\n";
      }
      data << "\n";
    }
    data << "\n";
    std::string ytics;
    for (size_t r = 0; r < h.rows.size(); ++r)
      ytics += (r ? ", " : "") + gq(h.rows[r]) + " " + std::to_string(r);
    plot << "set title " << gq(h.title) << " noenhanced\nset ytics (" << ytics << ") noenhanced\n"
         << "set xrange [-0.5:" << h.experts << "-0.5]\nset yrange [-0.5:" << h.rows.size()
         << "-0.5]\n"
         << "plot DATA index " << m << " using 1:2:3 with image, DATA index " << m
         << " using 1:2:(sprintf('%.2f', $3)) with labels font ',8'\n";
  }
  plot << "unset multiplot\n";
  Script s;
  s.data = data.str();
  s.body = plot.str();
  return s;
}

}  // namespace

const NamedList& plot_names() {
  static const NamedList kNames = {
      {"loss", "training and validation loss against tokens, every train stage"},
      {"loss-flops",
       "training and validation loss against training FLOPs (compute-matched comparison)"},
      {"ppl", "perplexity per domain as grouped bars by model, error bars across seeds"},
      {"expert-util",
       "routing per domain and layer: FFN experts' share of tokens, attention experts' mean gate"},
  };
  return kNames;
}

void check_plot_name(const std::string& name) { check_known(plot_names(), name, "plot"); }

PlotOutput make_plot(tracking::Store& store, const std::string& name, const std::string& run_name,
                     const std::string& out_dir, const std::string& stage) {
  check_plot_name(name);
  const core::OutputRules rules{false, {{"the store", store.path()}}};
  core::check_output_collection(out_dir, rules);  // before any work
  const std::string run = run_or_latest(store, run_name);
  PlotOutput out;
  Script s = name == "loss"         ? loss_plot(store, run, false, out.notes)
             : name == "loss-flops" ? loss_plot(store, run, true, out.notes)
             : name == "ppl"        ? ppl_plot(store, run)
                                    : util_plot(store, run, stage, out.notes);
  core::claim_output_collection(out_dir, rules);
  const std::string base = out_dir + "/" + name;
  out.svg = base + ".svg";
  out.png = base + ".png";
  core::write_file_atomic(base + ".dat", s.data);
  // Each output is written to a temporary name and renamed once gnuplot has succeeded. The body
  // runs once per terminal (replot would redo only the last panel of a multiplot).
  const std::string script =
      "DATA = " + gq(base + ".dat") + "\n" +
      "set terminal svg size 900,540 dynamic font 'sans,12' background '#ffffff'\n" +
      "set output " + gq(out.svg + ".tmp") + "\n" + s.body +
      "set terminal png size 900,540 font 'sans,10' background '#ffffff'\n" + "set output " +
      gq(out.png + ".tmp") + "\n" + s.body + "set output\n";
  core::write_file_atomic(base + ".gp", script);
  core::ProcessResult r;
  auto clean = [&] {
    std::error_code ec;
    std::filesystem::remove(out.svg + ".tmp", ec);
    std::filesystem::remove(out.png + ".tmp", ec);
  };
  try {
    r = core::run_process({"gnuplot", base + ".gp"}, 120);
  } catch (const ProcessError& e) {
    clean();
    throw Error(std::string("cannot run gnuplot: ") + e.what(),
                "install gnuplot-nox (scripts/setup.sh does)");
  }
  if (r.exit_code != 0) {
    clean();
    throw Error("gnuplot failed on " + base + ".gp (exit " + std::to_string(r.exit_code) +
                "): " + r.err + r.out);
  }
  std::filesystem::rename(out.svg + ".tmp", out.svg);
  std::filesystem::rename(out.png + ".tmp", out.png);
  return out;
}

}  // namespace upcycle::analysis
