#include "analysis/plots.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "analysis/tables.h"
#include "cluster/process.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/model/accounting.h"
#include "stages/model/config.h"

namespace upcycle::analysis {
namespace {

// A gnuplot single-quoted string: nothing is interpreted but '' for a quote.
std::string gq(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

double number(const tracking::Cell& c) {
  if (auto* d = std::get_if<double>(&c)) return *d;
  if (auto* i = std::get_if<int64_t>(&c)) return static_cast<double>(*i);
  return 0;
}

struct Curve {
  std::string stage, dir;
  std::vector<std::pair<double, double>> loss, val;  ///< (tokens, value)
};

// Loss curves of every train job of `run`, in plan order.
std::vector<Curve> curves(tracking::Store& store, const std::string& run) {
  auto rs = store.select(
      "SELECT rj.stage, j.dir, m.step, m.key, m.value FROM metrics m JOIN jobs j ON j.id = m.job_id "
      "JOIN run_jobs rj ON rj.job_id = j.id JOIN runs ru ON ru.id = rj.run_id "
      "WHERE ru.name = ? AND m.key IN ('loss', 'val_loss', 'tokens') ORDER BY rj.rowid, m.step", {run});
  std::vector<Curve> out;
  std::map<int64_t, std::map<std::string, double>> steps;
  auto flush = [&] {
    for (const auto& [step, kv] : steps) {
      auto tok = kv.find("tokens");
      if (tok == kv.end()) continue;
      if (auto l = kv.find("loss"); l != kv.end()) out.back().loss.emplace_back(tok->second, l->second);
      if (auto v = kv.find("val_loss"); v != kv.end()) out.back().val.emplace_back(tok->second, v->second);
    }
    steps.clear();
  };
  for (const auto& row : rs.rows) {
    const std::string stage = tracking::text_of(row[0]);
    if (out.empty() || out.back().stage != stage) {
      if (!out.empty()) flush();
      out.push_back({stage, tracking::text_of(row[1]), {}, {}});
    }
    steps[std::get<int64_t>(row[2])][tracking::text_of(row[3])] = number(row[4]);
  }
  if (!out.empty()) flush();
  return out;
}

// Training FLOPs per token of the model a train job produced (its checkpoint's config.json), or 0.
double training_flops_per_token(const std::string& job_dir) {
  try {
    const auto cfg = nlohmann::json::parse(core::read_file(job_dir + "/checkpoint/config.json"));
    return static_cast<double>(stages::count_flops(stages::model_config_from_json(cfg.at("model"))).training());
  } catch (const std::exception&) {
    return 0;
  }
}

struct Script {
  std::string data;   ///< NAME.dat
  std::string body;   ///< settings and the plot command, without terminal and output
};

Script loss_plot(tracking::Store& store, const std::string& run, bool by_flops, std::vector<std::string>& notes) {
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
    plot << (index ? ", \\\n     " : "plot ") << "DATA index " << 2 * index << " using 1:2 with lines lw 2 lc "
         << index + 1 << " title " << gq(c.stage) << ", DATA index " << 2 * index + 1
         << " using 1:2 with points pt 7 ps 0.8 lc " << index + 1 << " notitle";
    ++index;
  }
  if (index == 0) throw StoreError(store.path() + ": run '" + run + "': no train stage has a model config to count FLOPs");
  s.data = data.str();
  s.body = std::string("set title ") + gq("run " + run + ": training loss (lines), validation loss (points)") +
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
    for (const auto* m : models) data << " " << number((*m)[1 + 2 * d]) << " " << number((*m)[2 + 2 * d]);
    data << "\n";
  }
  for (size_t i = 0; i < models.size(); ++i) {
    plot << (i ? ", \\\n     " : "plot ") << "DATA using " << 2 + 2 * i << ":" << 3 + 2 * i
         << (i == 0 ? ":xtic(1)" : "") << " title " << gq(tracking::text_of((*models[i])[0]));
  }
  Script s;
  s.data = data.str();
  s.body = "set title " + gq("run " + run + ": test perplexity per domain (error bars: std across seeds)") +
           " noenhanced\nset style data histogram\nset style histogram errorbars gap 2 lw 1\n"
           "set style fill solid 0.7 border -1\nset ylabel 'perplexity'\nset key top left noenhanced\n"
           "set grid ytics\nset yrange [0:*]\nset xtics noenhanced\n" + plot.str() + "\n";
  return s;
}

Script util_plot(tracking::Store& store, const std::string& run, const std::string& want,
                 std::vector<std::string>& notes) {
  auto rs = store.select(
      "SELECT rj.stage, m.key, m.value FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id "
      "JOIN runs ru ON ru.id = rj.run_id WHERE ru.name = ? AND m.key LIKE 'util/l%' "
      "AND m.step = (SELECT MAX(step) FROM metrics m2 WHERE m2.job_id = m.job_id AND m2.key = m.key) "
      "ORDER BY rj.rowid", {run});
  std::string stage = want;
  if (stage.empty()) {
    for (const auto& row : rs.rows) stage = tracking::text_of(row[0]);  // the last MoE stage
  }
  std::map<std::pair<int, int>, double> cell;  // (layer, expert) -> fraction
  int layers = 0, experts = 0;
  for (const auto& row : rs.rows) {
    if (tracking::text_of(row[0]) != stage) continue;
    int l = -1, e = -1;
    if (std::sscanf(tracking::text_of(row[1]).c_str(), "util/l%d/e%d", &l, &e) != 2) continue;
    cell[{l, e}] = number(row[2]);
    layers = std::max(layers, l + 1);
    experts = std::max(experts, e + 1);
  }
  if (cell.empty()) {
    throw StoreError(store.path() + ": run '" + run + "' has no expert utilisation" +
                         (want.empty() ? "" : " for stage '" + want + "'"),
                     "it is logged by train stages of mixture models (upcycled with experts)");
  }
  std::ostringstream data;
  for (int l = 0; l < layers; ++l) {
    for (int e = 0; e < experts; ++e) data << e << " " << l << " " << cell[{l, e}] << "\n";
    data << "\n";
  }
  notes.push_back("FFN routers only: the attention routers' gates are not recorded yet");
  Script s;
  s.data = data.str();
  s.body = "set title " + gq("run " + run + ", stage " + stage + ": fraction of tokens per FFN expert") +
           " noenhanced\nset xlabel 'expert'\nset ylabel 'layer'\nset xtics 1\nset ytics 1\n"
           "set cblabel 'fraction of tokens'\nset cbrange [0:*]\nset palette rgbformulae 33,13,10\n"
           "set xrange [-0.5:" + std::to_string(experts) + "-0.5]\nset yrange [-0.5:" + std::to_string(layers) +
           "-0.5]\nplot DATA using 1:2:3 with image notitle, DATA using 1:2:(sprintf('%.2f', $3)) with labels notitle\n";
  return s;
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& plot_names() {
  static const std::vector<std::pair<std::string, std::string>> kNames = {
      {"loss", "training and validation loss against tokens, every train stage"},
      {"loss-flops", "training and validation loss against training FLOPs (compute-matched comparison)"},
      {"ppl", "perplexity per domain as grouped bars by model, error bars across seeds"},
      {"expert-util", "FFN expert utilisation per layer of an MoE train stage, as a heatmap"},
  };
  return kNames;
}

void check_plot_name(const std::string& name) {
  std::string list;
  for (const auto& [known, what] : plot_names()) {
    if (known == name) return;
    list += (list.empty() ? "" : ", ") + known;
  }
  throw ConfigError("upcycle plot: unknown plot '" + name + "' (known: " + list + ")");
}

PlotOutput make_plot(tracking::Store& store, const std::string& name, const std::string& run_name,
                     const std::string& out_dir, const std::string& stage) {
  check_plot_name(name);
  const std::string run = run_or_latest(store, run_name);
  PlotOutput out;
  Script s = name == "loss"          ? loss_plot(store, run, false, out.notes)
             : name == "loss-flops"  ? loss_plot(store, run, true, out.notes)
             : name == "ppl"         ? ppl_plot(store, run)
                                     : util_plot(store, run, stage, out.notes);
  core::make_dirs(out_dir);
  const std::string base = out_dir + "/" + name;
  out.svg = base + ".svg";
  out.png = base + ".png";
  core::write_file_atomic(base + ".dat", s.data);
  // Each output is written to a temporary name and renamed once gnuplot has succeeded.
  const std::string script = "DATA = " + gq(base + ".dat") + "\n" +
                             "set terminal svg size 900,540 dynamic font 'sans,12' background '#ffffff'\n" +
                             "set output " + gq(out.svg + ".tmp") + "\n" + s.body +
                             "set terminal png size 900,540 font 'sans,10' background '#ffffff'\n" +
                             "set output " + gq(out.png + ".tmp") + "\nreplot\nset output\n";
  core::write_file_atomic(base + ".gp", script);
  cluster::ProcessResult r;
  try {
    r = cluster::run_process({"gnuplot", base + ".gp"}, 120);
  } catch (const ClusterError& e) {
    throw Error(std::string("cannot run gnuplot: ") + e.what(), "install gnuplot-nox (scripts/setup.sh does)");
  }
  if (r.exit_code != 0) {
    throw Error("gnuplot failed on " + base + ".gp (exit " + std::to_string(r.exit_code) + "): " + r.err + r.out);
  }
  std::filesystem::rename(out.svg + ".tmp", out.svg);
  std::filesystem::rename(out.png + ".tmp", out.png);
  return out;
}

}  // namespace upcycle::analysis
