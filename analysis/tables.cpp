#include "analysis/tables.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "analysis/paper.h"
#include "analysis/render.h"
#include "core/error.h"

namespace upcycle::analysis {

using tracking::Cell;
using tracking::ResultSet;

std::string latest_run(tracking::Store& store) {
  auto rs = store.select(
      "SELECT name FROM runs ORDER BY COALESCE(updated_at, created_at) DESC, id DESC LIMIT 1");
  return rs.rows.empty() ? ""
                         : cell_text(rs.rows[0][0]);  // a name another tool stored as a number too
}

std::string run_or_latest(tracking::Store& store, const std::string& run_name) {
  std::string run = run_name.empty() ? latest_run(store) : run_name;
  if (run.empty())
    throw StoreError(store.path() + ": the store has no runs yet",
                     "run a recipe first: upcycle run RECIPE");
  if (store.select("SELECT 1 FROM runs WHERE name = ?", {run}).rows.empty()) {
    throw StoreError(store.path() + ": no run named '" + run + "'",
                     "`upcycle status` lists the runs");
  }
  return run;
}

std::vector<std::string> seed_group(tracking::Store& store, const std::string& run) {
  auto point_without_seed = [](const std::string& text) {
    nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_object()) j.erase("seed");
    return j.dump();
  };
  auto self = store.select(
      "SELECT experiment_id, sweep_point, seed_group FROM runs WHERE name = ? ORDER BY id DESC "
      "LIMIT 1",
      {run});
  std::vector<std::string> out{run};
  if (self.rows.empty()) return out;
  const std::string mine = point_without_seed(tracking::text_of(self.rows[0][1]));
  const std::string group = tracking::text_of(self.rows[0][2]);
  auto all = store.select(
      "SELECT name, sweep_point, seed_group FROM runs WHERE experiment_id = ? AND name != ? ORDER "
      "BY id",
      {std::to_string(std::get<int64_t>(self.rows[0][0])), run});
  for (const auto& r : all.rows) {
    const std::string point = tracking::text_of(r[1]), other = tracking::text_of(r[2]);
    // Everything but the seed is equal: the recipes (schema v4 runs), else the sweep points.
    const bool same_recipe =
        group.empty() || other.empty() ? point_without_seed(point) == mine : other == group;
    if (point.find("\"seed\"") != std::string::npos && same_recipe)
      out.push_back(tracking::text_of(r[0]));
  }
  return out;
}

namespace {

std::string fixed(double v, int decimals) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

std::string percent(double v) {
  char buf[48];
  std::snprintf(buf, sizeof(buf), "%+.1f%%", v);
  return buf;
}

// Values gathered across the runs of a seed group: row label -> column -> one value per run.
struct Gathered {
  std::vector<std::string> rows, columns;  ///< in order of first appearance
  std::map<std::string, std::map<std::string, std::vector<double>>> values;
  void add(const std::string& row, const std::string& col, double v) {
    if (std::find(rows.begin(), rows.end(), row) == rows.end()) rows.push_back(row);
    if (std::find(columns.begin(), columns.end(), col) == columns.end()) columns.push_back(col);
    values[row][col].push_back(v);
  }
};

// One note per job of the group's runs that is not done, so a missing row is explained.
std::vector<std::string> unfinished_jobs(tracking::Store& store,
                                         const std::vector<std::string>& runs) {
  std::vector<std::string> notes;
  for (const auto& run : runs) {
    auto rs = store.select(
        "SELECT stage, status, COALESCE(error, '') FROM v_jobs WHERE run = ? AND status != 'done'",
        {run});
    for (const auto& r : rs.rows) {
      std::string error = tracking::text_of(r[2]);
      if (error.size() > 120) error = error.substr(0, 117) + "...";
      notes.push_back("run " + run + ": job " + tracking::text_of(r[0]) + " is " +
                      tracking::text_of(r[1]) + (error.empty() ? "" : " (" + error + ")") +
                      "; its results are missing here");
    }
  }
  return notes;
}

std::string runs_note(const std::vector<std::string>& runs) {
  if (runs.size() == 1) return "one run (" + runs[0] + "); a sweep over seed gives mean ± std";
  std::string names;
  for (const auto& r : runs) names += (names.empty() ? "" : ", ") + r;
  return "mean ± sample std over " + std::to_string(runs.size()) + " seeds (runs " + names + ")";
}

// Marks the best mean of each numeric column (lowest or highest) among rows with a value.
void mark_best(Table& t, const std::vector<std::vector<std::optional<double>>>& means,
               bool lower_is_better) {
  t.best.assign(t.display.rows.size(), std::vector<bool>(t.display.columns.size(), false));
  if (means.empty()) return;
  for (size_t c = 0; c < means[0].size(); ++c) {
    std::optional<size_t> best;
    for (size_t r = 0; r < means.size(); ++r) {
      if (!means[r][c]) continue;
      if (!best ||
          (lower_is_better ? *means[r][c] < *means[*best][c] : *means[r][c] > *means[*best][c]))
        best = r;
    }
    if (best) t.best[*best][c + 1] = true;  // column 0 is the label
  }
}

}  // namespace

namespace {

// Per run of the group: model -> domain -> ppl (or bpb); "avg" is taken per run (all domains
// present), then pooled.
Gathered gather_perplexities(tracking::Store& store, const std::vector<std::string>& runs,
                             const std::string& metric) {
  Gathered g;
  for (const auto& r : runs) {
    auto rs = store.select(
        "SELECT model, substr(task, 5), value FROM v_results WHERE run = ? AND metric = ? "
        "AND task LIKE 'ppl/%' ORDER BY result_id",
        {r, metric});
    std::map<std::string, std::vector<double>> per_model;
    for (const auto& row : rs.rows) {
      g.add(tracking::text_of(row[0]), tracking::text_of(row[1]), tracking::number_of(row[2]));
      per_model[tracking::text_of(row[0])].push_back(tracking::number_of(row[2]));
    }
    for (const auto& [model, vals] : per_model) {
      double sum = 0;
      for (double v : vals) sum += v;
      if (vals.size() == g.columns.size()) g.values[model]["avg"].push_back(sum / vals.size());
    }
  }
  return g;
}

// Each side's change against its own BTX, in %: ours against our model standing for the paper's
// reference row, the paper's against that row.
struct Relative {
  const PaperTable& paper;
  const PaperRow* paper_ref = nullptr;
  std::string our_ref;
  double our_ref_avg = 0;

  Relative(const PaperTable& p, Gathered& g) : paper(p), paper_ref(p.reference()) {
    for (const auto& m : g.rows) {
      if (our_ref.empty() && p.row_for(m) == paper_ref && !g.values[m]["avg"].empty()) our_ref = m;
    }
    if (!our_ref.empty()) our_ref_avg = stat_of(g.values[our_ref]["avg"]).mean;
  }
  std::optional<double> ours(const Stat& avg) const {
    return avg.n && our_ref_avg > 0 ? std::optional<double>(100 * (avg.mean / our_ref_avg - 1))
                                    : std::nullopt;
  }
  std::optional<double> papers(const PaperRow* row) const {
    if (!row || !paper_ref) return std::nullopt;
    return 100 * (paper.average(*row) / paper.average(*paper_ref) - 1);
  }
};

Cell cell_or_null(const std::optional<double>& v) { return v ? Cell(*v) : Cell(); }
std::string percent_or_dash(const std::optional<double>& v) { return v ? percent(*v) : "—"; }

// One model's row: each domain's and the average's mean ± std, n, and both sides' changes.
std::vector<std::optional<double>> add_model_row(Table& t, Gathered& g, const std::string& m,
                                                 const std::vector<std::string>& domains,
                                                 const Relative& rel) {
  std::vector<Cell> disp{m}, data{m};
  std::vector<std::optional<double>> means;
  auto add_stat = [&](const Stat& s) {
    disp.push_back(stat_text(s, 2));
    data.push_back(s.n ? Cell(s.mean) : Cell());
    data.push_back(s.n > 1 ? Cell(s.std) : Cell());
    means.push_back(s.n ? std::optional<double>(s.mean) : std::nullopt);
  };
  for (const auto& col : domains) add_stat(stat_of(g.values[m][col]));
  const Stat avg = stat_of(g.values[m]["avg"]);
  add_stat(avg);
  disp.push_back(static_cast<int64_t>(avg.n));
  data.push_back(static_cast<int64_t>(avg.n));
  means.push_back(std::nullopt);  // n
  const PaperRow* p = rel.paper.row_for(m);
  disp.insert(disp.end(),
              {percent_or_dash(rel.ours(avg)), p ? p->label : "—", percent_or_dash(rel.papers(p))});
  data.insert(data.end(), {cell_or_null(rel.ours(avg)), p ? Cell(p->label) : Cell(),
                           cell_or_null(rel.papers(p))});
  t.display.rows.push_back(std::move(disp));
  t.data.rows.push_back(std::move(data));
  return means;
}

// The paper's rows the run has no model for, so its whole ordering stays visible.
void add_rows_not_run(Table& t, const Gathered& g, size_t domains, const Relative& rel) {
  for (const auto& p : rel.paper.rows) {
    bool shown = false;
    for (const auto& m : g.rows) shown = shown || rel.paper.row_for(m) == &p;
    if (shown) continue;
    std::vector<Cell> disp{std::string("(not run)")}, data{std::string("")};
    disp.insert(disp.end(), domains + 3, Cell(std::string("—")));
    data.insert(data.end(), 2 * domains + 4, Cell());
    disp.insert(disp.end(), {p.label, percent_or_dash(rel.papers(&p))});
    data.insert(data.end(), {p.label, cell_or_null(rel.papers(&p))});
    t.display.rows.push_back(std::move(disp));
    t.data.rows.push_back(std::move(data));
    t.best.push_back(std::vector<bool>(t.display.columns.size(), false));
  }
}

}  // namespace

Table perplexity_table(tracking::Store& store, const std::string& run_name,
                       const std::string& paper_id, const std::string& metric) {
  check_known(perplexity_metrics(), metric, "metric");
  const bool bpb = metric == "bpb";
  const std::string run = run_or_latest(store, run_name);
  const std::vector<std::string> runs = seed_group(store, run);
  const std::optional<PaperTable> paper = paper_table(paper_id);
  if (!paper) throw InternalError("no paper table '" + paper_id + "'");
  Gathered g = gather_perplexities(store, runs, metric);
  if (g.rows.empty()) {
    throw StoreError(store.path() + ": run '" + run + "' has no " +
                         (bpb ? "bits-per-byte" : "perplexity") + " results",
                     bpb ? "bits per byte need text data and an eval job of this version: upcycle "
                           "run RECIPE re-runs it"
                         : "its eval stage has not run or failed: upcycle status --run " + run);
  }
  const std::vector<std::string> domains = g.columns;
  const Relative rel(*paper, g);
  Table t;
  t.title = std::string(bpb ? "Bits per byte" : "Perplexity") + " per domain (" + paper->source +
            " layout), run " + run;
  t.display.columns = {"model"};
  t.data.columns = {"model"};
  for (const auto& d : domains) {
    auto it = paper->columns.find(d);
    t.display.columns.push_back(it == paper->columns.end() ? d : d + " (" + it->second + ")");
    t.data.columns.insert(t.data.columns.end(), {d, d + "_std"});
  }
  t.display.columns.insert(t.display.columns.end(),
                           {"avg", "n", "vs " + (rel.our_ref.empty() ? "BTX" : rel.our_ref),
                            "paper row", "paper vs " + paper->reference_row});
  t.data.columns.insert(t.data.columns.end(), {"avg", "avg_std", "n", "change_vs_reference_pct",
                                               "paper_row", "paper_change_vs_reference_pct"});
  std::vector<std::vector<std::optional<double>>> means;
  for (const auto& m : g.rows) means.push_back(add_model_row(t, g, m, domains, rel));
  mark_best(t, means, /*lower_is_better=*/true);
  add_rows_not_run(t, g, domains.size(), rel);
  t.notes.push_back(
      std::string("Ours: ") +
      (bpb ? "bits per byte (nll * tokens / (bytes * ln 2), independent of the tokenizer)"
           : "perplexity per token") +
      " on each domain's test split, " + runs_note(runs) + "; best per column marked.");
  t.notes.push_back(
      "Paper: " + paper->source +
      ", perplexity. At another scale absolute numbers are not comparable, "
      "so both sides show each row's change in the average against BTX (negative is better; ours "
      "in " +
      metric + "): " +
      (rel.our_ref.empty() ? "this run has no BTX model, " : "ours against " + rel.our_ref + ", ") +
      "the paper's against its " + paper->reference_row + " row.");
  for (auto& n : unfinished_jobs(store, runs)) t.notes.push_back(std::move(n));
  return t;
}

Table downstream_table(tracking::Store& store, const std::string& run_name) {
  const std::string run = run_or_latest(store, run_name);
  const std::vector<std::string> runs = seed_group(store, run);
  Gathered g, stderrs;
  for (const auto& r : runs) {
    auto rs = store.select(
        "SELECT model, task || ' ' || metric || CASE WHEN filter = 'none' THEN '' ELSE ',' || "
        "filter END, value, "
        "stderr FROM v_results WHERE run = ? AND task NOT LIKE 'ppl/%' AND task NOT LIKE "
        "'routing/%' "
        "ORDER BY result_id",
        {r});
    for (const auto& row : rs.rows) {
      g.add(tracking::text_of(row[0]), tracking::text_of(row[1]), tracking::number_of(row[2]));
      stderrs.add(tracking::text_of(row[0]), tracking::text_of(row[1]),
                  tracking::number_of(row[3]));  // NaN: n/a
    }
  }
  if (g.rows.empty()) {
    throw StoreError(store.path() + ": run '" + run + "' has no downstream results",
                     "its eval stage lists no tasks, or has not run: upcycle status --run " + run);
  }
  Table t;
  t.title = "Downstream tasks (BAM Table 3 layout), run " + run;
  t.display.columns = {"model"};
  t.display.columns.insert(t.display.columns.end(), g.columns.begin(), g.columns.end());
  t.data.columns = {"model", "task", "mean", "std", "stderr", "n"};
  std::vector<std::vector<std::optional<double>>> means;
  for (const auto& m : g.rows) {
    std::vector<Cell> disp{m};
    std::vector<std::optional<double>> row_means;
    for (const auto& col : g.columns) {
      const std::vector<double>& v = g.values[m][col];
      Stat s = stat_of(v);
      if (s.n == 1) s.std = stderrs.values[m][col][0];    // one run: the score's own standard error
      const bool spread = s.n > 1 || !std::isnan(s.std);  // an lm-eval stderr may be N/A
      std::string text = !s.n     ? "missing"
                         : spread ? fixed(s.mean, 3) + " ± " + fixed(s.std, 3)
                                  : fixed(s.mean, 3);
      disp.push_back(text);
      row_means.push_back(s.n ? std::optional<double>(s.mean) : std::nullopt);
      if (s.n) {
        t.data.rows.push_back({m, col, s.mean, s.n > 1 ? Cell(s.std) : Cell(),
                               s.n == 1 && !std::isnan(s.std) ? Cell(s.std) : Cell(),
                               static_cast<int64_t>(s.n)});
      }
    }
    t.display.rows.push_back(std::move(disp));
    means.push_back(std::move(row_means));
  }
  mark_best(t, means, /*lower_is_better=*/false);
  t.notes.push_back("Ours: accuracy (acc, acc_norm) or exact match on each task's examples; " +
                    std::string(runs.size() == 1
                                    ? "± is the score's standard error over examples (one run)"
                                    : runs_note(runs)) +
                    "; best per column marked.");
  for (auto& n : unfinished_jobs(store, runs)) t.notes.push_back(std::move(n));
  return t;
}

Table validation_loss_table(tracking::Store& store, const std::string& run_name) {
  const std::string run = run_or_latest(store, run_name);
  const std::vector<std::string> runs = seed_group(store, run);
  Gathered g;
  for (const auto& r : runs) {
    // The last logged value of each metric of each train job of the run.
    auto rs = store.select(
        "SELECT rj.stage, m.key, m.value FROM metrics m JOIN run_jobs rj ON rj.job_id = m.job_id "
        "JOIN runs ru ON ru.id = rj.run_id WHERE ru.name = ? AND m.key IN ('val_loss', 'tokens') "
        "AND m.step = (SELECT MAX(step) FROM metrics m2 WHERE m2.job_id = m.job_id AND m2.key = "
        "m.key) "
        "ORDER BY rj.rowid",
        {r});
    for (const auto& row : rs.rows) {
      g.add(tracking::text_of(row[0]), tracking::text_of(row[1]), tracking::number_of(row[2]));
    }
  }
  if (g.rows.empty()) {
    throw StoreError(store.path() + ": run '" + run + "' has no training metrics",
                     "its train stages have not run: upcycle status --run " + run);
  }
  const std::optional<PaperTable> paper = paper_table("nv-upcycling");
  const PaperRow* paper_ref = paper->reference();
  std::string our_ref;  // our stage standing for continued dense training
  for (const auto& s : g.rows) {
    if (our_ref.empty() && paper->row_for(s) == paper_ref && !g.values[s]["val_loss"].empty())
      our_ref = s;
  }
  const double ref_loss = our_ref.empty() ? 0 : stat_of(g.values[our_ref]["val_loss"]).mean;
  Table t;
  t.title =
      "Final validation loss of each training stage (NVIDIA's ablations: compare at equal tokens), "
      "run " +
      run;
  t.display.columns = {
      "stage",     "tokens",        "val_loss", "n", "vs " + (our_ref.empty() ? "dense" : our_ref),
      "paper row", "paper vs dense"};
  t.data.columns = {"stage",     "tokens",
                    "val_loss",  "val_loss_std",
                    "n",         "change_vs_reference_pct",
                    "paper_row", "paper_change_vs_reference_pct"};
  std::vector<std::vector<std::optional<double>>> means;
  for (const auto& s : g.rows) {
    const Stat tok = stat_of(g.values[s]["tokens"]), loss = stat_of(g.values[s]["val_loss"]);
    const bool vs = loss.n && ref_loss > 0;
    const PaperRow* p = paper->row_for(s);
    const double paper_change =
        p && paper_ref ? 100 * (p->values.at("val_loss") / paper_ref->values.at("val_loss") - 1)
                       : 0;
    t.display.rows.push_back({s, tok.n ? Cell(static_cast<int64_t>(tok.mean)) : Cell(),
                              stat_text(loss, 4), static_cast<int64_t>(loss.n),
                              vs ? percent(100 * (loss.mean / ref_loss - 1)) : "—",
                              p ? p->label : "—", p && paper_ref ? percent(paper_change) : "—"});
    t.data.rows.push_back({s, tok.n ? Cell(tok.mean) : Cell(), loss.n ? Cell(loss.mean) : Cell(),
                           loss.n > 1 ? Cell(loss.std) : Cell(), static_cast<int64_t>(loss.n),
                           vs ? Cell(100 * (loss.mean / ref_loss - 1)) : Cell(),
                           p ? Cell(p->label) : Cell(),
                           p && paper_ref ? Cell(paper_change) : Cell()});
    means.push_back(
        {std::nullopt, loss.n ? std::optional<double>(loss.mean) : std::nullopt, std::nullopt});
  }
  mark_best(t, means, /*lower_is_better=*/true);
  t.notes.push_back("Ours: the last validation loss each stage logged, " + runs_note(runs) +
                    ". Compare stages at equal tokens only.");
  t.notes.push_back(
      "Paper: " + paper->source +
      ", each row against continued dense training; also from it: "
      "softmax-then-topK beats topK-then-softmax, weight scaling gives 1.5% lower loss for E8G1T1, "
      "top-2 beats top-1 (1.35757 against 1.38031 at 15B).");
  for (auto& n : unfinished_jobs(store, runs)) t.notes.push_back(std::move(n));
  return t;
}

const NamedList& table_names() {
  static const NamedList kNames = {
      {"ppl", "perplexity per domain, beside BAM Table 1 (590M)"},
      {"ppl-2b", "perplexity per domain, beside BAM Table 2 (2B)"},
      {"downstream", "downstream task scores with their standard errors (BAM Table 3 layout)"},
      {"attention-routing",
       "perplexity beside BAM Table 6: soft against top-1 and top-2 attention routing"},
      {"param-matched",
       "perplexity beside BAM Tables 4 and 5: BTX with extra seed experts against BAM"},
      {"nv-upcycling",
       "final validation loss and tokens of every training stage (NVIDIA's ablations)"},
      {"params",
       "total and active parameters of a recipe's models beside BAM Table 9 (--recipe, default "
       "recipes/paper/bam_590m.yaml)"},
      {"flops", "forward FLOPs per token per layer beside BAM Table 7 (--recipe, as params)"},
  };
  return kNames;
}

void check_table_name(const std::string& name) { check_known(table_names(), name, "table"); }

const NamedList& perplexity_metrics() {
  static const NamedList kMetrics = {
      {"ppl", "perplexity per token: exp(mean NLL)"},
      {"bpb",
       "bits per byte: NLL in bits per UTF-8 byte of the text, comparable across tokenizers"},
  };
  return kMetrics;
}

Table make_table(tracking::Store& store, const std::string& name, const std::string& run,
                 const std::string& metric) {
  check_table_name(name);
  if (name == "params" || name == "flops")
    throw InternalError("params and flops tables come from a recipe");
  if (name == "downstream") return downstream_table(store, run);
  if (name == "nv-upcycling") return validation_loss_table(store, run);
  return perplexity_table(store, run, name, metric);
}

}  // namespace upcycle::analysis
