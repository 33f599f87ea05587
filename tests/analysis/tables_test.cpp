// The paper tables over a store filled by hand: seeds pooled as mean ± sample std (checked against
// values worked out here), the best value marked, the paper's relative numbers (BAM Table 1: BAM DM
// against BTX = 9.70 / 10.72 - 1 = -9.5%), missing results and unfinished jobs shown, and every
// format.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "analysis/paper.h"
#include "analysis/report.h"
#include "analysis/tables.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/metric_sink.h"
#include "tests/support/temp_dir.h"

namespace upcycle::analysis {
namespace {

using tracking::Store;

// One run per seed of experiment "exp" (sweep point {"seed": s}); each run's eval job has the given
// perplexities: model -> {general, code}.
void add_run(Store& s, const std::string& dir, int seed,
             const std::map<std::string, std::pair<double, double>>& ppl,
             const std::string& eval_status = "done", const std::string& seed_group = "") {
  const std::string name = "exp/seed=" + std::to_string(seed);
  int64_t run = s.upsert_run({"rk" + std::to_string(seed), "exp", name,
                              "{\"seed\":\"" + std::to_string(seed) + "\"}", seed_group});
  const std::string key = "eval" + std::to_string(seed), job_dir = dir + "/" + key;
  core::make_dirs(job_dir);
  s.upsert_job(run, {0, key, "eval", "eval", core::JobStatus::kPending, 0, std::nullopt, job_dir,
                     "", "", "", "{}", ""});
  if (eval_status != "done") {
    s.set_job_status(key, *core::parse_job_status(eval_status), 1, "out of memory");
    return;
  }
  core::JobResult r;
  r.key = key;
  for (const auto& [model, v] : ppl) {
    r.evals.push_back({model, "ppl/general", "ppl", v.first, 0.1, 1000, "none", std::nullopt});
    r.evals.push_back({model, "ppl/code", "ppl", v.second, 0.1, 1000, "none", std::nullopt});
    r.evals.push_back({model, "cont/code", "acc", v.second / 100, 0.05, 100, "none", std::nullopt});
    r.evals.push_back(
        {model, "ppl/general", "bpb", v.first / 10, 0.01, 1000, "none", std::nullopt});
    r.evals.push_back({model, "ppl/code", "bpb", v.second / 10, 0.01, 1000, "none", std::nullopt});
  }
  s.ingest_job(key, job_dir, r);
}

double cell(const tracking::ResultSet& rs, const std::string& row, const std::string& col) {
  size_t c = std::find(rs.columns.begin(), rs.columns.end(), col) - rs.columns.begin();
  for (const auto& r : rs.rows) {
    if (tracking::text_of(r[0]) == row) return std::get<double>(r.at(c));
  }
  ADD_FAILURE() << "no row " << row;
  return NAN;
}

// --metric bpb: the same table over the bpb rows, titled and noted as bits per byte.
TEST(TablesTest, BitsPerByteTableReadsTheBpbRows) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"btx_dm", {20, 4}}, {"bam_dm", {18, 3}}});
  Table t = make_table(s, "ppl", {"exp/seed=1", "bpb"});
  EXPECT_EQ(t.title.rfind("Bits per byte", 0), 0u) << t.title;
  EXPECT_NEAR(cell(t.data, "bam_dm", "general"), 1.8, 1e-12);
  EXPECT_NEAR(cell(t.data, "bam_dm", "avg"), (1.8 + 0.3) / 2, 1e-12);
  EXPECT_NEAR(cell(t.data, "bam_dm", "change_vs_reference_pct"), 100 * (2.1 / 2.4 - 1), 1e-9);
  EXPECT_THROW(make_table(s, "ppl", {"exp/seed=1", "bits"}), ConfigError);
}

// Seeds pool only when everything but the seed is equal: a run of another recipe at the same sweep
// point (another lr, set outside the sweep) stays out of the mean.
TEST(TablesTest, OnlyRunsOfOneRecipePoolAsSeeds) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"bam_dm", {18, 3}}}, "done", "group-a");
  add_run(s, dir.path(), 2, {{"bam_dm", {20, 3}}}, "done", "group-a");
  add_run(s, dir.path(), 3, {{"bam_dm", {90, 3}}}, "done", "group-b");
  EXPECT_EQ(seed_group(s, "exp/seed=1"), (std::vector<std::string>{"exp/seed=1", "exp/seed=2"}));
  EXPECT_EQ(seed_group(s, "exp/seed=3"), (std::vector<std::string>{"exp/seed=3"}));
  EXPECT_DOUBLE_EQ(cell(perplexity_table(s, "ppl", {"exp/seed=2"}).data, "bam_dm", "general"),
                   19.0);
}

TEST(TablesTest, SeedsArePooledAsMeanAndSampleStd) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"btx_dm", {20, 4}}, {"bam_dm", {18, 3}}});
  add_run(s, dir.path(), 2, {{"btx_dm", {22, 4}}, {"bam_dm", {19, 3.5}}});
  add_run(s, dir.path(), 3, {{"btx_dm", {24, 4}}, {"bam_dm", {20, 4}}});
  Table t = perplexity_table(s, "ppl", {"exp/seed=2"});
  // general of btx_dm: 20, 22, 24 -> mean 22, sample std 2.
  EXPECT_DOUBLE_EQ(cell(t.data, "btx_dm", "general"), 22.0);
  EXPECT_DOUBLE_EQ(cell(t.data, "btx_dm", "general_std"), 2.0);
  // avg per run of bam_dm: 10.5, 11.25, 12 -> mean 11.25, std 0.75.
  EXPECT_DOUBLE_EQ(cell(t.data, "bam_dm", "avg"), 11.25);
  EXPECT_NEAR(cell(t.data, "bam_dm", "avg_std"), 0.75, 1e-12);
  // Ours against our BTX (avg 13): 11.25 / 13 - 1.
  EXPECT_NEAR(cell(t.data, "bam_dm", "change_vs_reference_pct"), 100 * (11.25 / 13 - 1), 1e-9);
  // The paper's BAM DM (Expert KV) against its BTX: 9.70 / 10.72 - 1.
  EXPECT_NEAR(cell(t.data, "bam_dm", "paper_change_vs_reference_pct"), 100 * (9.70 / 10.72 - 1),
              1e-9);
  const std::string text = render_table(t, Format::kTable);
  EXPECT_NE(text.find("22.00 ± 2.00"), std::string::npos) << text;
  EXPECT_NE(text.find("19.00 ± 1.00*"), std::string::npos) << "the best general is marked:\n"
                                                           << text;
  EXPECT_NE(text.find("-9.5%"), std::string::npos) << text;
  EXPECT_NE(text.find("3 seeds"), std::string::npos) << text;
  // The average's footnote: over the two domains evaluated, not the paper's four.
  EXPECT_NE(text.find("avg: the mean over general, code, not as BAM Table 1 (590M seed) averages "
                      "(general, code, law, math): this run did not evaluate law, math"),
            std::string::npos)
      << text;
  // The paper's rows this run has no model for: only with --all-rows.
  EXPECT_EQ(text.find("(not run)"), std::string::npos) << text;
  const std::string all =
      render_table(perplexity_table(s, "ppl", {"exp/seed=2", "ppl", true}), Format::kLatex);
  EXPECT_NE(all.find("(not run) & -- &"), std::string::npos) << all;
  EXPECT_NE(all.find("BAM CM (Shared KV)"), std::string::npos) << all;
}

// "Best" only where a value is strictly better than every other in its column: ties and a column
// with one value mark nothing.
TEST(TablesTest, BestIsMarkedOnlyWhenStrictlyBest) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"btx_dm", {20, 4}}, {"bam_dm", {20, 3}}, {"seed", {25, 3}}});
  Table t = perplexity_table(s, "ppl", {"exp/seed=1"});
  const size_t general = 1, code = 2;
  for (size_t r = 0; r < t.best.size(); ++r) {
    EXPECT_FALSE(t.best[r][general]) << "20 ties 20: nobody is best";
    EXPECT_FALSE(t.best[r][code]) << "3 ties 3";
  }
  const std::string text = render_table(t, Format::kTable);
  EXPECT_EQ(text.find("20.00*"), std::string::npos) << text;
  int64_t run = s.upsert_run({"rk9", "other", "lone", "{}"});
  core::make_dirs(dir / "lone");
  s.upsert_job(run, {0, "lone", "eval", "eval", core::JobStatus::kPending, 0, std::nullopt,
                     dir / "lone", "", "", "", "{}", ""});
  core::JobResult r;
  r.key = "lone";
  r.evals = {{"bam_dm", "cont/code", "acc", 0, 0, 100, "none", std::nullopt}};
  s.ingest_job("lone", dir / "lone", r);
  Table lone = downstream_table(s, {"lone"});
  ASSERT_FALSE(lone.empty());
  for (const auto& row : lone.best)
    for (bool b : row) EXPECT_FALSE(b) << "one model: no best";
}

// The 2B table's average is the paper's: code, law and math, with general shown but not averaged.
TEST(TablesTest, TheTwoBillionTableAveragesThePapersThreeDomains) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  int64_t run = s.upsert_run({"rk", "exp", "r", "{}"});
  core::make_dirs(dir / "e");
  s.upsert_job(run, {0, "e", "eval", "eval", core::JobStatus::kPending, 0, std::nullopt, dir / "e",
                     "", "", "", "{}", ""});
  core::JobResult r;
  r.key = "e";
  const std::map<std::string, double> ppl = {
      {"general", 100}, {"code", 2}, {"law", 4}, {"math", 6}};
  for (const auto& [d, v] : ppl)
    r.evals.push_back({"bam_dm", "ppl/" + d, "ppl", v, 0.1, 1000, "none", std::nullopt});
  s.ingest_job("e", dir / "e", r);
  EXPECT_DOUBLE_EQ(cell(make_table(s, "ppl-2b", {"r"}).data, "bam_dm", "avg"), 4.0);
  EXPECT_DOUBLE_EQ(cell(make_table(s, "ppl", {"r"}).data, "bam_dm", "avg"), 28.0);
  const std::string text = render_table(make_table(s, "ppl-2b", {"r"}), Format::kMarkdown);
  EXPECT_NE(text.find("avg: the mean over code, law, math, as BAM Table 2"), std::string::npos)
      << text;
  EXPECT_NE(text.find("general shown, not averaged"), std::string::npos) << text;
}

TEST(TablesTest, AFailedRunIsShownAndOnlyFinishedSeedsArePooled) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"bam_dm", {18, 3}}});
  add_run(s, dir.path(), 2, {}, "failed");
  Table t = perplexity_table(s, "ppl", {"exp/seed=1"});
  EXPECT_DOUBLE_EQ(cell(t.data, "bam_dm", "general"), 18.0);
  const std::string text = render_table(t, Format::kTable);
  EXPECT_NE(
      text.find("run exp/seed=2: job eval is failed (out of memory); its results are missing here"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find("2 seeds"), std::string::npos) << text;
}

TEST(TablesTest, FormatsCarryTheSameTable) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"bam_dm", {18, 3}}, {"experts/code", {30, 2.5}}});
  Table t = perplexity_table(s, "ppl", {});
  const std::string latex = render_table(t, Format::kLatex);
  EXPECT_NE(latex.find("\\begin{tabular}"), std::string::npos);
  EXPECT_NE(latex.find("\\toprule"), std::string::npos) << "booktabs:\n" << latex;
  EXPECT_NE(latex.find("\\bottomrule"), std::string::npos) << latex;
  EXPECT_EQ(latex.find("\\hline"), std::string::npos) << latex;
  EXPECT_NE(latex.find("\\caption{Perplexity per domain"), std::string::npos) << latex;
  EXPECT_NE(latex.find("experts/code & 30.00 & \\textbf{2.50}"), std::string::npos) << latex;
  EXPECT_NE(latex.find("bam\\_dm"), std::string::npos) << "underscores are escaped:\n" << latex;
  const std::string md = render_table(t, Format::kMarkdown);
  EXPECT_NE(md.find("**18.00**"), std::string::npos) << md;
  const std::string csv = render_table(t, Format::kCsv);
  EXPECT_EQ(csv.substr(0, csv.find(',')), "model");
  const std::string html = render_table(t, Format::kHtml);
  EXPECT_NE(html.find("<td><b>18.00</b></td>"), std::string::npos) << html;
  auto json = nlohmann::json::parse(render_table(t, Format::kJson));
  EXPECT_EQ(json["rows"][0]["model"], "bam_dm");
  EXPECT_FALSE(json["notes"].empty());
}

// The LaTeX form compiles: pdflatex (Debian's texlive-latex-base, which scripts/setup.sh installs)
// on a document holding the table, with the characters that need escaping in its labels.
TEST(TablesTest, LatexCompilesWithPdflatex) {
  if (std::system("command -v pdflatex >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "pdflatex is not installed";
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"bam_dm", {18, 3}}, {"btx_dm", {20, 4}}, {"a&b_%#{}~^\\x", {21, 5}}});
  add_run(s, dir.path(), 2, {{"bam_dm", {19, 3}}, {"btx_dm", {21, 4}}, {"a&b_%#{}~^\\x", {22, 5}}});
  const std::string doc =
      "\\documentclass{article}\n\\usepackage[T1]{fontenc}\n\\usepackage{graphicx}\n"
      "\\usepackage{booktabs}\n\\begin{document}\n" +
      render_table(perplexity_table(s, "ppl", {"exp/seed=1"}), Format::kLatex) +
      render_table(perplexity_table(s, "ppl", {"exp/seed=1", "ppl", true}), Format::kLatex) +
      "\\end{document}\n";
  core::write_file_atomic(dir / "t.tex", doc);
  const std::string cmd =
      "cd '" + dir.path() +
      "' && pdflatex -interaction=nonstopmode -halt-on-error t.tex > t.out 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << core::read_file(dir / "t.out");
  EXPECT_TRUE(std::filesystem::exists(dir / "t.pdf"));
}

TEST(TablesTest, DownstreamShowsTheStderrOfOneRun) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"bam_dm", {18, 30}}});
  // lm-evaluation-harness reports "N/A" for some stderrs (stored as NULL), and integer-valued
  // scores.
  int64_t run = s.upsert_run({"rk9", "exp", "harness", "{}"});
  s.upsert_job(run, {0, "h", "harness", "command", core::JobStatus::kPending, 0, std::nullopt,
                     dir / "h", "", "", "", "{}", ""});
  core::make_dirs(dir / "h");
  core::JobResult r;
  r.key = "h";
  r.evals = {{"seed", "mmlu", "acc", 1, std::nullopt, 100, "none", 5}};
  s.ingest_job("h", dir / "h", r);
  const std::string text = render_table(downstream_table(s, {"exp/seed=1"}), Format::kTable);
  EXPECT_NE(text.find("0.300 ± 0.050"), std::string::npos) << text;
  const std::string harness = render_table(downstream_table(s, {"harness"}), Format::kTable);
  EXPECT_NE(harness.find("| 1.000 "), std::string::npos)
      << "no ± for a stderr the harness did not give:\n"
      << harness;
}

// NVIDIA's ablation table: final validation losses against continued dense training, beside the
// paper's Table 1 (E8G8T8: 1.320 / 1.377 - 1 = -4.1%).
TEST(TablesTest, ValidationLossBesideNvidiasTable1) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  int64_t run = s.upsert_run({"rk", "exp", "r", "{}"});
  for (const auto& [stage, loss] :
       std::vector<std::pair<std::string, double>>{{"dense_cm", 4.0}, {"sparse_e8g8t8", 3.8}}) {
    const std::string job_dir = dir / stage;
    core::make_dirs(job_dir);
    s.upsert_job(run, {0, stage, stage, "train", core::JobStatus::kPending, 0, std::nullopt,
                       job_dir, "", "", "", "{}", ""});
    core::JsonlMetricSink sink(job_dir + "/metrics.jsonl");
    sink.log(1, {{"loss", 5.0}, {"tokens", 1000}, {"val_loss", loss + 0.5}});
    sink.log(2, {{"loss", 4.5}, {"tokens", 2000}, {"val_loss", loss}});
    core::JobResult r;
    r.key = stage;
    s.ingest_job(stage, job_dir, r);
  }
  Table t = make_table(s, "nv-upcycling", {"r"});
  EXPECT_DOUBLE_EQ(cell(t.data, "sparse_e8g8t8", "val_loss"), 3.8);
  EXPECT_DOUBLE_EQ(cell(t.data, "sparse_e8g8t8", "tokens"), 2000);
  EXPECT_NEAR(cell(t.data, "sparse_e8g8t8", "change_vs_reference_pct"), -5.0, 1e-9);
  EXPECT_NEAR(cell(t.data, "sparse_e8g8t8", "paper_change_vs_reference_pct"),
              100 * (1.320 / 1.377 - 1), 1e-9);
}

TEST(TablesTest, MissingThingsAreNamed) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  EXPECT_THROW(make_table(s, "pplx", {}), ConfigError);
  try {
    make_table(s, "ppl", {});
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("has no runs yet"), std::string::npos) << e.what();
  }
  // A run without results of a table's kind: an empty table saying why, not an error.
  add_run(s, dir.path(), 1, {}, "failed");
  for (const char* name : {"ppl", "downstream", "nv-upcycling"}) {
    const Table t = make_table(s, name, {"exp/seed=1"});
    EXPECT_TRUE(t.empty()) << name;
    EXPECT_NE(t.no_rows.find("run 'exp/seed=1' has no"), std::string::npos) << t.no_rows;
    EXPECT_NE(render_table(t, Format::kTable).find("no rows: "), std::string::npos);
  }
  EXPECT_THROW(make_table(s, "ppl", {"nosuch"}), StoreError);
}

TEST(TablesTest, PaperNumbersAreThePapers) {
  auto t1 = paper_table("ppl");
  ASSERT_TRUE(t1);
  EXPECT_EQ(t1->source, "BAM Table 1 (590M seed)");
  ASSERT_NE(t1->row_for("bam_dm"), nullptr);
  EXPECT_DOUBLE_EQ(t1->row_for("bam_dm")->values.at("code"), 3.45);
  // Table 1's Average is the mean of its four columns (within rounding).
  for (const auto& r : t1->rows) {
    double sum = 0;
    for (const char* d : {"general", "code", "law", "math"}) sum += r.values.at(d);
    EXPECT_NEAR(sum / 4, r.values.at("avg"), 0.01) << r.label;
  }
  EXPECT_FALSE(paper_table("nosuch"));
}

}  // namespace
}  // namespace upcycle::analysis

namespace upcycle::analysis {
namespace {

// One report per run: a second run's report sits beside the first one's, and the index links
// both; run names that are not path words get a directory of their own, never a path.
TEST(ReportTest, EachRunHasItsOwnPageAndTheIndexLinksThem) {
  testing::TempDir dir;
  Store s(dir / "store.sqlite");
  add_run(s, dir.path(), 1, {{"bam_dm", {18, 3}}});
  const ReportPaths first = write_report(s, {"exp/seed=1"}, dir / "report");
  add_run(s, dir.path(), 2, {{"bam_dm", {19, 3}}});
  const ReportPaths second = write_report(s, {"exp/seed=2"}, dir / "report");
  ASSERT_EQ(first.pages.size(), 1u);
  ASSERT_EQ(second.pages.size(), 1u);
  EXPECT_NE(first.pages[0], second.pages[0]);
  EXPECT_TRUE(std::filesystem::exists(first.pages[0])) << "the second run kept the first's page";
  EXPECT_EQ(report_dir_name("exp/seed=1").find('/'), std::string::npos);
  EXPECT_NE(report_dir_name("exp/seed=1"), report_dir_name("exp_seed=1"));
  EXPECT_EQ(report_dir_name("tiny"), "tiny");
  EXPECT_NE(report_dir_name("..").substr(0, 2), "..");
  const std::string index = core::read_file(second.index);
  for (const char* run : {"exp/seed=1", "exp/seed=2"}) {
    EXPECT_NE(index.find("<a href=\"" + report_dir_name(run) + "/report.html\">"),
              std::string::npos)
        << index;
  }
}

}  // namespace
}  // namespace upcycle::analysis
