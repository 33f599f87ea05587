#include "analysis/plots.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/results.h"
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

// Okabe & Ito's eight colours, distinguishable with every common colour-vision deficiency, for
// lines and bars; viridis (perceptually uniform, colour-blind safe) for heatmaps.
// Okabe & Ito's eight colours (distinguishable with every common colour-vision deficiency), solid
// for the first eight lines and dashed for the next eight; viridis (perceptually uniform, colour-
// blind safe) for heatmaps.
std::string style() {
  static const char* kColours[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7",
                                   "#56B4E9", "#D55E00", "#F0E442", "#000000"};
  std::string out;
  for (int i = 0; i < 16; ++i) {
    out += "set linetype " + std::to_string(i + 1) + " lc rgb '" + kColours[i % 8] + "' lw 2 dt " +
           (i < 8 ? "1" : "2") + "\n";
  }
  return out +
         "set linetype cycle 16\n"
         "set palette defined (0 '#440154', 1 '#46327E', 2 '#365C8D', 3 '#277F8E', 4 '#1FA187', "
         "5 '#4AC16D', 6 '#A0DA39', 7 '#FDE725')\n";
}

// One train stage's curves over the runs of a seed group: tokens -> one value per run.
struct Curve {
  std::string stage, dir;  ///< dir: the first run's job (its checkpoint config counts FLOPs)
  std::map<double, std::vector<double>> loss, val;
};

// Loss curves of every train job of the runs, in plan order; a stage's runs pooled by tokens.
std::vector<Curve> curves(tracking::Store& store, const std::vector<std::string>& runs) {
  std::vector<Curve> out;
  for (const auto& run : runs) {
    auto rs = store.select(
        "SELECT rj.stage, j.dir, m.step, m.key, m.value FROM metrics m JOIN jobs j ON j.id = "
        "m.job_id JOIN run_jobs rj ON rj.job_id = j.id JOIN runs ru ON ru.id = rj.run_id "
        "WHERE ru.name = ? AND m.key IN ('loss', 'val_loss', 'tokens') AND m.value IS NOT NULL "
        "ORDER BY rj.rowid, m.step",
        {run});
    // stage -> step -> key -> value
    std::vector<std::pair<std::string, std::string>> order;
    std::map<std::string, std::map<int64_t, std::map<std::string, double>>> steps;
    for (const auto& row : rs.rows) {
      const std::string stage = tracking::text_of(row[0]);
      if (!steps.count(stage)) order.emplace_back(stage, tracking::text_of(row[1]));
      const double step = tracking::number_of(row[2]);  // an integer unless another tool wrote it
      if (std::isfinite(step))
        steps[stage][static_cast<int64_t>(step)][tracking::text_of(row[3])] =
            tracking::number_of(row[4]);
    }
    for (const auto& [stage, dir] : order) {
      auto it = out.begin();
      while (it != out.end() && it->stage != stage) ++it;
      if (it == out.end()) it = out.insert(out.end(), Curve{stage, dir, {}, {}});
      for (const auto& [step, kv] : steps[stage]) {
        auto tok = kv.find("tokens");
        if (tok == kv.end()) continue;
        if (auto l = kv.find("loss"); l != kv.end()) it->loss[tok->second].push_back(l->second);
        if (auto v = kv.find("val_loss"); v != kv.end()) it->val[tok->second].push_back(v->second);
      }
    }
  }
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
  int panels_wide = 1, panels_high = 1;
};

// "x mean std n" lines of a pooled curve.
bool write_pooled(std::ostringstream& data, const std::map<double, std::vector<double>>& points,
                  double scale) {
  bool spread = false;
  for (const auto& [x, ys] : points) {
    const Stat s = stat_of(ys);
    spread = spread || s.n > 1;
    data << x * scale << " " << s.mean << " " << s.std << " " << s.n << "\n";
  }
  data << "\n\n";
  return spread;
}

Script loss_plot(tracking::Store& store, const std::string& run, bool by_flops,
                 std::vector<std::string>& notes) {
  const std::vector<std::string> runs = seed_group(store, run);
  std::vector<Curve> cs = curves(store, runs);
  if (cs.empty()) throw StoreError(store.path() + ": run '" + run + "' has no training metrics");
  Script s;
  std::ostringstream data, plot;
  int index = 0;
  bool bands = false;
  for (const auto& c : cs) {
    const double scale = by_flops ? training_flops_per_token(c.dir) : 1;
    if (scale == 0) {
      notes.push_back(c.stage + ": no checkpoint config to count its FLOPs; left out");
      continue;
    }
    data << "# " << c.stage << " loss: x mean std n\n";
    const bool spread = write_pooled(data, c.loss, scale);
    data << "# " << c.stage << " val_loss: x mean std n\n";
    write_pooled(data, c.val, scale);
    bands = bands || spread;
    const std::string lt = " lt " + std::to_string(index + 1);
    plot << (index ? ", \\\n     " : "plot ");
    if (spread) {
      plot << "DATA index " << 2 * index
           << " using 1:($2-$3):($2+$3) with filledcurves fs transparent solid 0.2 noborder" << lt
           << " notitle, \\\n     ";
    }
    plot << "DATA index " << 2 * index << " using 1:2 with lines" << lt << " title " << gq(c.stage)
         << ", DATA index " << 2 * index + 1 << " using 1:2 with points pt 7 ps 0.8" << lt
         << " notitle";
    ++index;
  }
  if (index == 0)
    throw StoreError(store.path() + ": run '" + run +
                     "': no train stage has a model config to count FLOPs");
  s.data = data.str();
  const std::string what =
      runs.size() > 1 ? "mean of " + std::to_string(runs.size()) + " seeds, band ±1 std; " : "";
  s.body = std::string("set title ") +
           gq("run " + run + ": training loss (lines; " + what + "validation loss: points)") +
           " noenhanced\nset xlabel " + (by_flops ? "'training FLOPs'" : "'tokens'") +
           "\nset ylabel 'loss (nats per token)'\nset key top right noenhanced\nset grid\n" +
           (by_flops ? "set logscale x\nset format x '%.0e'\n" : "") + plot.str() + "\n";
  notes.push_back("tokens and FLOPs count from the start of each stage");
  if (bands) {
    std::string names;
    for (const auto& r : runs) names += (names.empty() ? "" : ", ") + r;
    notes.push_back(what + "over the runs " + names);
  }
  return s;
}

Script ppl_plot(tracking::Store& store, const std::string& run) {
  const Table t = perplexity_table(store, "ppl", {run});
  if (t.empty()) throw StoreError(t.no_rows, t.hint);
  // Rows of data: one per model; columns mean, std per domain. Plotted as groups by domain.
  std::vector<std::string> domains;
  for (size_t c = 1; c < t.data.columns.size(); ++c) {
    const std::string& col = t.data.columns[c];
    if (col == "avg") break;
    if (c % 2 == 1) domains.push_back(col);  // model, then (domain, domain_std) pairs
  }
  std::vector<const std::vector<tracking::Cell>*> models;
  for (const auto& row : t.data.rows) models.push_back(&row);
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
         << (i == 0 ? ":xtic(1)" : "") << " title " << gq(tracking::text_of((*models[i])[0]))
         << " lt " << i + 1
         << (i >= 8 ? " fs pattern 2 border -1" : "");  // past eight colours: hatched
  }
  Script s;
  s.data = data.str();
  s.body =
      "set title " +
      gq("run " + run + ": test perplexity per domain (error bars: std across seeds)") +
      " noenhanced\nset style data histogram\nset style histogram errorbars gap 2 lw 1\n"
      "set style fill solid 0.8 border -1\nset ylabel 'perplexity'\nset key top left noenhanced\n"
      "set grid ytics\nset yrange [0:*]\nset xtics noenhanced\n" +
      plot.str() + "\n";
  return s;
}

// One heatmap panel: rows (domains, or layers), columns experts, cells fractions.
struct Heatmap {
  std::string title;
  int router = 0;  ///< panels of one router share a row of the figure
  std::vector<std::string> rows;
  std::map<std::pair<size_t, int64_t>, double> cells;  ///< (row, expert) -> value
  int64_t experts = 0;
  void add(const std::string& row, int64_t expert, double v) {
    size_t r = std::find(rows.begin(), rows.end(), row) - rows.begin();
    if (r == rows.size()) rows.push_back(row);
    cells[{r, expert}] = v;
    experts = std::max(experts, expert + 1);
  }
};

// What the lineage walk needs of one job, from its row: stage, kind, input keys and (upcycle) the
// extra seed experts. nullopt when the job is unknown or its config is not what this code wrote.
struct LineageJob {
  std::string stage, kind;
  std::vector<std::string> inputs;
  int64_t extra_seed_experts = 0;
};

std::optional<LineageJob> job_by_key(tracking::Store& store, const std::string& key) {
  auto rs = store.select("SELECT stage, kind, config FROM jobs WHERE key = ? LIMIT 1", {key});
  if (rs.rows.empty()) return std::nullopt;
  const auto cfg = nlohmann::json::parse(tracking::text_of(rs.rows[0][2]), nullptr, false);
  if (!cfg.is_object() || !cfg.contains("inputs") || !cfg["inputs"].is_array()) return std::nullopt;
  LineageJob job{tracking::text_of(rs.rows[0][0]), tracking::text_of(rs.rows[0][1]), {}, 0};
  for (const auto& k : cfg["inputs"]) {
    if (!k.is_string()) return std::nullopt;
    job.inputs.push_back(k.get<std::string>());
  }
  const auto spec = cfg.find("spec");
  if (spec != cfg.end() && spec->is_object() && spec->contains("extra_seed_experts") &&
      (*spec)["extra_seed_experts"].is_number_integer())
    job.extra_seed_experts =
        std::clamp<int64_t>((*spec)["extra_seed_experts"].get<int64_t>(), 0, 64);
  return job;
}

// The domain each expert of `model` came from: follow its training inputs back to the upcycle
// job, whose inputs (seed, experts/code, ...) are the experts in order; a stage experts/<d> is
// labelled d. Empty when the lineage is not in the store.
std::vector<std::string> expert_domains(tracking::Store& store, const std::string& run,
                                        const std::string& model) {
  auto rs =
      store.select("SELECT key FROM v_jobs WHERE run = ? AND stage = ? LIMIT 1", {run, model});
  if (rs.rows.empty()) return {};
  std::optional<LineageJob> job = job_by_key(store, tracking::text_of(rs.rows[0][0]));
  for (int depth = 0; job && depth < 64; ++depth) {  // a chain of train stages, bounded
    if (job->kind == "upcycle") {
      std::vector<std::string> out;
      for (const auto& k : job->inputs) {
        const auto in = job_by_key(store, k);
        if (!in) return {};
        out.push_back(in->stage.substr(in->stage.rfind('/') + 1));
      }
      for (int64_t i = 0; i < job->extra_seed_experts && !out.empty(); ++i)
        out.push_back(out.front() + " copy");
      return out;
    }
    std::optional<LineageJob> next;  // the model input of a train job (the other is the data)
    for (const auto& k : job->inputs) {
      auto in = job_by_key(store, k);
      if (in && (in->kind == "train" || in->kind == "upcycle")) next = std::move(in);
    }
    job = std::move(next);
  }
  return {};
}

// Expert e's label: its domain; with E = n x granularity experts, "domain.j".
std::string expert_label(const std::vector<std::string>& domains, int64_t experts, int64_t e) {
  const int64_t n = static_cast<int64_t>(domains.size());
  if (n == 0 || experts % n != 0) return std::to_string(e);
  const int64_t g = experts / n;
  return g == 1 ? domains[e] : domains[e / g] + "." + std::to_string(e % g);
}

// Per-domain routing the eval job recorded for `model`: one panel per router and layer, rows the
// domains.
std::vector<Heatmap> eval_routing(tracking::Store& store, const std::string& run,
                                  std::string& model) {
  const std::vector<Metric> results = read_results(store, run);
  if (model.empty()) {  // the last model evaluated, preferring one with attention experts (BAM)
    bool attention = false;
    for (const auto& m : results) {
      if (m.kind != core::ResultKind::kRouting) continue;
      const auto cell = core::parse_router_metric(m.name);
      const bool attn = cell && cell->router == "attn";
      if (attn || !attention) model = m.model;
      attention = attention || attn;
    }
  }
  std::map<std::pair<int, int64_t>, Heatmap> panels;  // (router: 0 ffn 1 attn, layer)
  for (const auto& m : results) {
    if (m.kind != core::ResultKind::kRouting || m.model != model) continue;
    const auto cell = core::parse_router_metric(m.name);
    if (!cell || (cell->router != "ffn" && cell->router != "attn")) continue;
    const int router = cell->router == "attn";
    Heatmap& h = panels[{router, cell->layer}];
    h.router = router;
    if (h.title.empty()) {
      h.title = std::string(router ? "attention: mean gate" : "FFN: share of tokens") + ", layer " +
                std::to_string(cell->layer);
    }
    h.add(m.domain, cell->expert, m.value);
  }
  std::vector<Heatmap> out;
  for (auto& [k, h] : panels) out.push_back(std::move(h));
  return out;
}

// Training-time FFN utilisation (util/l<L>/e<E>, the last logged value) of train stage `stage`.
std::vector<Heatmap> training_routing(tracking::Store& store, const std::string& run,
                                      std::string& stage) {
  const std::vector<LastMetric> metrics = read_last_metrics(store, run);
  auto is_util = [](const LastMetric& m) {
    const auto cell = core::parse_router_metric(m.name);
    return cell && cell->router == "util" ? cell : std::nullopt;
  };
  if (stage.empty()) {
    for (const auto& m : metrics) {
      if (is_util(m)) stage = m.stage;
    }
  }
  Heatmap h{"FFN router while training: share of tokens per expert", 0, {}, {}, 0};
  for (const auto& m : metrics) {
    const auto cell = is_util(m);
    if (cell && m.stage == stage)
      h.add("layer " + std::to_string(cell->layer), cell->expert, m.value);
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
  const std::vector<std::string> domains = expert_domains(store, run, model);
  if (domains.empty())
    notes.push_back("experts are numbered: the store does not say their domains");
  Script s;
  s.panels_high = maps.front().router != maps.back().router ? 2 : 1;
  s.panels_wide = static_cast<int>((maps.size() + s.panels_high - 1) / s.panels_high);
  std::ostringstream data, plot;
  plot << "set multiplot layout " << s.panels_high << "," << s.panels_wide << " title "
       << gq("run " + run + ", model " + model + ": routing per layer (rows: the text's domain)")
       << " noenhanced\nset xlabel 'expert (the domain it was trained on)'\nset cbrange [0:1]\n"
       << "unset key\n";
  for (size_t m = 0; m < maps.size(); ++m) {
    const Heatmap& h = maps[m];
    for (size_t r = 0; r < h.rows.size(); ++r) {
      for (int64_t e = 0; e < h.experts; ++e) {
        auto it = h.cells.find({r, e});
        data << e << " " << r << " " << (it == h.cells.end() ? 0.0 : it->second) << "\n";
      }
      data << "\n";
    }
    data << "\n";
    std::string ytics, xtics;
    for (size_t r = 0; r < h.rows.size(); ++r)
      ytics += (r ? ", " : "") + gq(h.rows[r]) + " " + std::to_string(r);
    for (int64_t e = 0; e < h.experts; ++e)
      xtics += (e ? ", " : "") + gq(expert_label(domains, h.experts, e)) + " " + std::to_string(e);
    plot << "set title " << gq(h.title) << " noenhanced\nset ytics (" << ytics << ") noenhanced\n"
         << "set xtics (" << xtics << ") noenhanced" << (h.experts > 4 ? " rotate by 45 right" : "")
         << "\n"
         << "set xrange [-0.5:" << h.experts << "-0.5]\nset yrange [-0.5:" << h.rows.size()
         << "-0.5]\n"
         << "plot DATA index " << m << " using 1:2:3 with image, DATA index "
         << m
         // black text on the light half of viridis, white on the dark half
         << " using 1:2:(sprintf('%.2f', $3)):($3 > 0.5 ? 0 : 16777215) with labels textcolor "
            "rgb variable font ',8'\n";
  }
  plot << "unset multiplot\n";
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
  out.pdf = base + ".pdf";
  core::write_file_atomic(base + ".dat", s.data);
  // Each output is written to a temporary name and renamed once gnuplot has succeeded. The body
  // runs once per terminal (replot would redo only the last panel of a multiplot). A figure of
  // several panels grows with them.
  const int w = std::max(900, 450 * s.panels_wide),
            h = s.panels_high == 1 ? 540 : 420 * s.panels_high;
  const std::string size = std::to_string(w) + "," + std::to_string(h);
  char inches[64];
  std::snprintf(inches, sizeof(inches), "%.2fin,%.2fin", w / 150.0, h / 150.0);
  const std::string script =
      "DATA = " + gq(base + ".dat") + "\n" + style() + "set terminal svg size " + size +
      " dynamic font 'sans,12' background '#ffffff'\n" + "set output " + gq(out.svg + ".tmp") +
      "\n" + s.body + "set terminal png size " + size + " font 'sans,10' background '#ffffff'\n" +
      "set output " + gq(out.png + ".tmp") + "\n" + s.body + "set terminal pdfcairo size " +
      inches + " font 'sans,8'\n" + "set output " + gq(out.pdf + ".tmp") + "\n" + s.body +
      "set output\n";
  core::write_file_atomic(base + ".gp", script);
  core::ProcessResult r;
  const std::vector<std::string> outputs = {out.svg, out.png, out.pdf};
  auto clean = [&] {
    std::error_code ec;
    for (const auto& o : outputs) std::filesystem::remove(o + ".tmp", ec);
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
  for (const auto& o : outputs) std::filesystem::rename(o + ".tmp", o);
  return out;
}

}  // namespace upcycle::analysis
