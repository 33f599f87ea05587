#include "analysis/tables.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "analysis/paper.h"
#include "analysis/render.h"
#include "analysis/results.h"
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

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
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
  return "mean ± sample std over " + std::to_string(runs.size()) + " seeds (runs " + join(runs) +
         ")";
}

// Marks the best mean of each numeric column (lowest or highest), only where it is strictly
// better than every other row's: a tie marks nothing, and so does a column with one value.
void mark_best(Table& t, const std::vector<std::vector<std::optional<double>>>& means,
               bool lower_is_better) {
  t.best.assign(t.display.rows.size(), std::vector<bool>(t.display.columns.size(), false));
  if (means.empty()) return;
  for (size_t c = 0; c < means[0].size(); ++c) {
    std::optional<size_t> best;
    bool strict = false;
    int values = 0;
    for (size_t r = 0; r < means.size(); ++r) {
      if (!means[r][c]) continue;
      ++values;
      const double v = *means[r][c];
      if (!best) {
        best = r, strict = true;
      } else if (v == *means[*best][c]) {
        strict = false;
      } else if (lower_is_better ? v < *means[*best][c] : v > *means[*best][c]) {
        best = r, strict = true;
      }
    }
    if (best && strict && values > 1) t.best[*best][c + 1] = true;  // column 0 is the label
  }
}

// The eval results of every run of the group.
std::vector<std::pair<std::string, std::vector<Metric>>> group_results(
    tracking::Store& store, const std::vector<std::string>& runs) {
  std::vector<std::pair<std::string, std::vector<Metric>>> out;
  for (const auto& r : runs) out.emplace_back(r, read_results(store, r));
  return out;
}

// The domains the average is taken over: the paper's for this table, less those the runs did not
// evaluate at all (a run of two domains still gets an average, its note says over which).
std::vector<std::string> averaged_domains(const PaperTable& paper,
                                          const std::vector<std::string>& evaluated) {
  std::vector<std::string> out;
  for (const auto& d : paper.average_of) {
    if (std::find(evaluated.begin(), evaluated.end(), d) != evaluated.end()) out.push_back(d);
  }
  return out;
}

// Per run of the group: model -> domain -> ppl (or bpb); "avg" is taken per run over the domains
// averaged_domains() gives (when the model has every one of them), then pooled.
Gathered gather_perplexities(tracking::Store& store, const std::vector<std::string>& runs,
                             const std::string& metric, const PaperTable& paper) {
  Gathered g;
  std::vector<std::map<std::string, std::map<std::string, double>>> per_run;
  for (const auto& [run, results] : group_results(store, runs)) {
    auto& per_model = per_run.emplace_back();
    for (const auto& m : results) {
      if (m.kind != core::ResultKind::kPerplexity || m.name != metric) continue;
      g.add(m.model, m.domain, m.value);
      per_model[m.model][m.domain] = m.value;
    }
  }
  const std::vector<std::string> average_of = averaged_domains(paper, g.columns);
  for (const auto& per_model : per_run) {
    for (const auto& [model, by_domain] : per_model) {
      double sum = 0;
      size_t n = 0;
      for (const auto& d : average_of) {
        if (auto it = by_domain.find(d); it != by_domain.end()) sum += it->second, ++n;
      }
      if (n == average_of.size() && n > 0) g.values[model]["avg"].push_back(sum / n);
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

// One model's row: each domain's and the average's mean ± std, n, then the two changes side by
// side (ours, the paper's) and the paper's row.
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
              {percent_or_dash(rel.ours(avg)), percent_or_dash(rel.papers(p)), p ? p->label : "—"});
  data.insert(data.end(), {cell_or_null(rel.ours(avg)), cell_or_null(rel.papers(p)),
                           p ? Cell(p->label) : Cell()});
  t.display.rows.push_back(std::move(disp));
  t.data.rows.push_back(std::move(data));
  return means;
}

// --all-rows: the paper's rows the run has no model for, so its whole ordering stays visible.
void add_rows_not_run(Table& t, const Gathered& g, size_t domains, const Relative& rel) {
  for (const auto& p : rel.paper.rows) {
    bool shown = false;
    for (const auto& m : g.rows) shown = shown || rel.paper.row_for(m) == &p;
    if (shown) continue;
    std::vector<Cell> disp{std::string("(not run)")}, data{std::string("")};
    disp.insert(disp.end(), domains + 3, Cell(std::string("—")));
    data.insert(data.end(), 2 * domains + 4, Cell());
    disp.insert(disp.end(), {percent_or_dash(rel.papers(&p)), p.label});
    data.insert(data.end(), {cell_or_null(rel.papers(&p)), p.label});
    t.display.rows.push_back(std::move(disp));
    t.data.rows.push_back(std::move(data));
    t.best.push_back(std::vector<bool>(t.display.columns.size(), false));
  }
}

// The footnote saying which domains the average is over, and where that is not the paper's set.
std::string average_note(const PaperTable& paper, const std::vector<std::string>& domains) {
  const std::vector<std::string> used = averaged_domains(paper, domains);
  std::vector<std::string> left_out, not_run;
  for (const auto& d : domains) {
    if (std::find(used.begin(), used.end(), d) == used.end()) left_out.push_back(d);
  }
  for (const auto& d : paper.average_of) {
    if (std::find(used.begin(), used.end(), d) == used.end()) not_run.push_back(d);
  }
  return "avg: the mean over " + join(used) + (not_run.empty() ? ", as " : ", not as ") +
         paper.source + " averages (" + join(paper.average_of) + ")" +
         (not_run.empty() ? "" : ": this run did not evaluate " + join(not_run)) +
         (left_out.empty() ? "" : "; " + join(left_out) + " shown, not averaged") +
         "; a model missing one of them has no avg.";
}

}  // namespace

Table perplexity_table(tracking::Store& store, const std::string& paper_id,
                       const TableOptions& options) {
  check_known(perplexity_metrics(), options.metric, "metric");
  const bool bpb = options.metric == "bpb";
  const std::string run = run_or_latest(store, options.run);
  const std::vector<std::string> runs = seed_group(store, run);
  const std::optional<PaperTable> paper = paper_table(paper_id);
  if (!paper || paper->average_of.empty())
    throw InternalError("no perplexity paper table '" + paper_id + "'");
  const std::string title = std::string(bpb ? "Bits per byte" : "Perplexity") + " per domain (" +
                            paper->source + " layout), run " + run;
  Gathered g = gather_perplexities(store, runs, options.metric, *paper);
  if (g.rows.empty()) {
    return no_rows_table(
        title,
        store.path() + ": run '" + run + "' has no " + (bpb ? "bits-per-byte" : "perplexity") +
            " results",
        bpb ? "bits per byte need text data and an eval job of this version: upcycle run RECIPE "
              "re-runs it"
            : "its eval stage has not run or failed: upcycle status --run " + run);
  }
  const std::vector<std::string> domains = g.columns;
  const Relative rel(*paper, g);
  Table t;
  t.title = title;
  t.display.columns = {"model"};
  t.data.columns = {"model"};
  for (const auto& d : domains) {
    auto it = paper->columns.find(d);
    t.display.columns.push_back(it == paper->columns.end() ? d : d + " (" + it->second + ")");
    t.data.columns.insert(t.data.columns.end(), {d, d + "_std"});
  }
  const std::string ours_vs = "vs " + (rel.our_ref.empty() ? "BTX" : rel.our_ref);
  t.display.columns.insert(t.display.columns.end(),
                           {"avg", "n", ours_vs, "paper vs " + paper->reference_row, "paper row"});
  t.data.columns.insert(t.data.columns.end(), {"avg", "avg_std", "n", "change_vs_reference_pct",
                                               "paper_change_vs_reference_pct", "paper_row"});
  std::vector<std::vector<std::optional<double>>> means;
  for (const auto& m : g.rows) means.push_back(add_model_row(t, g, m, domains, rel));
  mark_best(t, means, /*lower_is_better=*/true);
  if (options.all_rows) add_rows_not_run(t, g, domains.size(), rel);
  t.notes.push_back(
      std::string("Ours: ") +
      (bpb ? "bits per byte (nll * tokens / (bytes * ln 2), independent of the tokenizer)"
           : "perplexity per token") +
      " on each domain's test split, " + runs_note(runs) +
      "; the best of a column is marked where it is strictly best.");
  t.notes.push_back(average_note(*paper, domains));
  t.notes.push_back(
      "Paper: " + paper->source +
      ", perplexity. At another scale absolute numbers are not comparable, "
      "so both sides show each row's change in the average against BTX (negative is better; ours "
      "in " +
      options.metric + "): " +
      (rel.our_ref.empty() ? "this run has no BTX model, " : "ours against " + rel.our_ref + ", ") +
      "the paper's against its " + paper->reference_row + " row" +
      (options.all_rows ? "." : "; --all-rows adds the paper's rows this run has no model for."));
  for (auto& n : unfinished_jobs(store, runs)) t.notes.push_back(std::move(n));
  return t;
}

Table downstream_table(tracking::Store& store, const TableOptions& options) {
  const std::string run = run_or_latest(store, options.run);
  const std::vector<std::string> runs = seed_group(store, run);
  const std::string title = "Downstream tasks (BAM Table 3 layout), run " + run;
  Gathered g, stderrs;
  for (const auto& [r, results] : group_results(store, runs)) {
    for (const auto& m : results) {
      if (m.kind != core::ResultKind::kTask) continue;
      const std::string col = m.task + " " + m.name + (m.filter == "none" ? "" : "," + m.filter);
      g.add(m.model, col, m.value);
      stderrs.add(m.model, col, m.stderr_value.value_or(NAN));  // NaN: n/a
    }
  }
  if (g.rows.empty()) {
    return no_rows_table(
        title, store.path() + ": run '" + run + "' has no downstream results",
        "its eval stage lists no tasks, or has not run: upcycle status --run " + run);
  }
  Table t;
  t.title = title;
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
                    "; the best of a column is marked where it is strictly best.");
  for (auto& n : unfinished_jobs(store, runs)) t.notes.push_back(std::move(n));
  return t;
}

Table validation_loss_table(tracking::Store& store, const TableOptions& options) {
  const std::string run = run_or_latest(store, options.run);
  const std::vector<std::string> runs = seed_group(store, run);
  const std::string title =
      "Final validation loss of each training stage (NVIDIA's ablations: compare at equal "
      "tokens), run " +
      run;
  Gathered g;
  for (const auto& r : runs) {
    for (const auto& m : read_last_metrics(store, r)) {
      if (m.name == "val_loss" || m.name == "tokens") g.add(m.stage, m.name, m.value);
    }
  }
  for (auto it = g.rows.begin(); it != g.rows.end();) {  // stages that logged no validation loss
    it = g.values[*it]["val_loss"].empty() ? g.rows.erase(it) : it + 1;
  }
  if (g.rows.empty()) {
    return no_rows_table(title, store.path() + ": run '" + run + "' has no validation losses",
                         "its train stages have not run: upcycle status --run " + run);
  }
  const std::optional<PaperTable> paper = paper_table("nv-upcycling");
  const PaperRow* paper_ref = paper->reference();
  std::string our_ref;  // our stage standing for continued dense training
  for (const auto& s : g.rows) {
    if (our_ref.empty() && paper->row_for(s) == paper_ref) our_ref = s;
  }
  const double ref_loss = our_ref.empty() ? 0 : stat_of(g.values[our_ref]["val_loss"]).mean;
  Table t;
  t.title = title;
  t.display.columns = {
      "stage",          "tokens",   "val_loss", "n", "vs " + (our_ref.empty() ? "dense" : our_ref),
      "paper vs dense", "paper row"};
  t.data.columns = {"stage",
                    "tokens",
                    "val_loss",
                    "val_loss_std",
                    "n",
                    "change_vs_reference_pct",
                    "paper_change_vs_reference_pct",
                    "paper_row"};
  std::vector<std::vector<std::optional<double>>> means;
  for (const auto& s : g.rows) {
    const Stat tok = stat_of(g.values[s]["tokens"]), loss = stat_of(g.values[s]["val_loss"]);
    const bool vs = ref_loss > 0;
    const PaperRow* p = paper->row_for(s);
    const std::optional<double> paper_change =
        p && paper_ref
            ? std::optional<double>(
                  100 * (p->values.at("val_loss") / paper_ref->values.at("val_loss") - 1))
            : std::nullopt;
    const std::optional<double> change =
        vs ? std::optional<double>(100 * (loss.mean / ref_loss - 1)) : std::nullopt;
    t.display.rows.push_back({s, tok.n ? Cell(static_cast<int64_t>(tok.mean)) : Cell(),
                              stat_text(loss, 4), static_cast<int64_t>(loss.n),
                              percent_or_dash(change), percent_or_dash(paper_change),
                              p ? p->label : "—"});
    t.data.rows.push_back({s, tok.n ? Cell(tok.mean) : Cell(), Cell(loss.mean),
                           loss.n > 1 ? Cell(loss.std) : Cell(), static_cast<int64_t>(loss.n),
                           cell_or_null(change), cell_or_null(paper_change),
                           p ? Cell(p->label) : Cell()});
    means.push_back({std::nullopt, std::optional<double>(loss.mean), std::nullopt});
  }
  mark_best(t, means, /*lower_is_better=*/true);
  t.notes.push_back("Ours: the last validation loss each stage logged, " + runs_note(runs) +
                    ". Compare stages at equal tokens only; the best is marked where strictly "
                    "best.");
  t.notes.push_back(
      "Paper: " + paper->source +
      ", each row against continued dense training; also from it: "
      "softmax-then-topK beats topK-then-softmax, weight scaling gives 1.5% lower loss for E8G1T1, "
      "top-2 beats top-1 (1.35757 against 1.38031 at 15B).");
  for (auto& n : unfinished_jobs(store, runs)) t.notes.push_back(std::move(n));
  return t;
}

const std::vector<TableDef>& table_registry() {
  using S = TableSource;
  static const std::vector<TableDef> kTables = {
      {"ppl", "perplexity per domain, beside BAM Table 1 (590M)", S::kPerplexity, "ppl", true},
      {"ppl-2b", "perplexity per domain, beside BAM Table 2 (2B; its average: code, law, math)",
       S::kPerplexity, "ppl-2b", false},
      {"downstream", "downstream task scores with their standard errors (BAM Table 3 layout)",
       S::kDownstream, "", true},
      {"attention-routing",
       "perplexity beside BAM Table 6: soft against top-1 and top-2 attention routing",
       S::kPerplexity, "attention-routing", false},
      {"param-matched",
       "perplexity beside BAM Tables 4 and 5: BTX with extra seed experts against BAM",
       S::kPerplexity, "param-matched", false},
      {"nv-upcycling",
       "final validation loss and tokens of every training stage (NVIDIA's ablations)",
       S::kValidationLoss, "nv-upcycling", true},
      {"params",
       "total and active parameters of a recipe's models beside BAM Table 9 (--recipe, default "
       "recipes/paper/bam_590m.yaml)",
       S::kRecipe, "params", false},
      {"flops", "forward FLOPs per token per layer beside BAM Table 7 (--recipe, as params)",
       S::kRecipe, "flops", false},
  };
  return kTables;
}

const TableDef& find_table(const std::string& name) {
  for (const auto& t : table_registry()) {
    if (t.name == name) return t;
  }
  check_known(table_names(), name, "table");  // throws, listing the known tables
  throw InternalError("find_table: " + name);
}

NamedList table_names() {
  NamedList out;
  for (const auto& t : table_registry()) out.emplace_back(t.name, t.what);
  return out;
}

const NamedList& perplexity_metrics() {
  static const NamedList kMetrics = {
      {"ppl", "perplexity per token: exp(mean NLL)"},
      {"bpb",
       "bits per byte: NLL in bits per UTF-8 byte of the text, comparable across tokenizers"},
  };
  return kMetrics;
}

Table make_table(tracking::Store& store, const std::string& name, const TableOptions& options) {
  const TableDef& def = find_table(name);
  switch (def.source) {
    case TableSource::kPerplexity:
      return perplexity_table(store, def.paper, options);
    case TableSource::kDownstream:
      return downstream_table(store, options);
    case TableSource::kValidationLoss:
      return validation_loss_table(store, options);
    case TableSource::kRecipe:
      break;
  }
  throw InternalError("table " + name + " comes from a recipe, not the store");
}

}  // namespace upcycle::analysis
