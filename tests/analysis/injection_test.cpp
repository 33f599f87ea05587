// Strings from the store reach gnuplot, LaTeX and HTML only through one escaping function per
// target (analysis/plots.h gnuplot_quote, analysis/render.h latex_escape and html_escape). A store
// whose run, stage and model names carry shell, gnuplot, LaTeX and HTML payloads is plotted,
// tabulated and reported: nothing runs (no file appears), and the text comes out literally.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "analysis/plots.h"
#include "analysis/render.h"
#include "analysis/report.h"
#include "analysis/tables.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/metric_sink.h"
#include "core/output_dir.h"
#include "tests/support/temp_dir.h"

namespace upcycle::analysis {
namespace {

using tracking::Store;

// Each payload would create its marker file if any interpreter ran it.
const std::vector<std::pair<std::string, std::string>> kPayloads = {
    {"$(touch SHELL)", "SHELL"},
    {"`touch BACKQUOTE`", "BACKQUOTE"},
    {"a\n!touch BANG\n", "BANG"},
    {"b\nsystem('touch SYSTEM')\nc", "SYSTEM"},
    {"d' . system(\"touch QUOTE\") . '", "QUOTE"},
    {"@x </script><script>alert(1)</script> \\input{/etc/hostname} 100% & $x_1 #{", ""},
};

std::string all_payloads() {
  std::string s;
  for (const auto& [p, marker] : kPayloads) s += p;
  return s;
}

// Runs from inside a fresh directory, so that anything a payload did lands there.
class InjectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    old_ = std::filesystem::current_path();
    std::filesystem::current_path(dir_.path());
  }
  void TearDown() override {
    for (const auto& [p, marker] : kPayloads) {
      if (!marker.empty())
        EXPECT_FALSE(std::filesystem::exists(dir_ / marker)) << "the payload ran: " << p;
    }
    std::filesystem::current_path(old_);
  }
  testing::TempDir dir_;
  std::filesystem::path old_;
};

// One run named `run`: a train job (stage `stage`) with loss curves, an eval job with perplexities
// of model `model` on two domains.
void fill(Store& s, const std::string& dir, const std::string& run, const std::string& stage,
          const std::string& model) {
  const int64_t id = s.upsert_run({"rk", "exp", run, "{}"});
  const std::string train_dir = dir + "/train";
  core::make_dirs(train_dir);
  {
    core::JsonlMetricSink sink(train_dir + "/" + core::kMetricsFile);
    for (int step = 1; step <= 4; ++step)
      sink.log(step, {{"tokens", 100.0 * step}, {"loss", 5.0 - step}, {"val_loss", 5.5 - step}});
  }
  s.upsert_job(id, {0, "train-key", stage, "train", core::JobStatus::kPending, 0, std::nullopt,
                    train_dir, "", "", "", "{}", ""});
  core::JobResult t;
  t.key = "train-key";
  s.ingest_job(t.key, train_dir, t);
  const std::string eval_dir = dir + "/eval";
  core::make_dirs(eval_dir);
  s.upsert_job(id, {0, "eval-key", "eval", "eval", core::JobStatus::kPending, 0, std::nullopt,
                    eval_dir, "", "", "", "{}", ""});
  core::JobResult r;
  r.key = "eval-key";
  r.evals.push_back({model, "ppl/general", "ppl", 12.5, 0.1, 1000, "none", std::nullopt});
  r.evals.push_back({model, "ppl/code", "ppl", 7.25, 0.1, 1000, "none", std::nullopt});
  s.ingest_job(r.key, eval_dir, r);
}

TEST_F(InjectionTest, PlotsTablesAndTheReportShowPayloadsLiterally) {
  const std::string evil = all_payloads();
  {
    Store s(dir_ / "store.sqlite");
    fill(s, dir_.path(), "run " + evil, "stage " + evil, "model " + evil);
  }
  Store s(dir_ / "store.sqlite", Store::Mode::kReadOnly);
  const std::string run = "run " + evil;
  for (const char* name : {"loss", "ppl"}) {
    PlotOutput p = make_plot(s, name, run, dir_ / "plots");
    const std::string svg = core::read_file(p.svg);
    EXPECT_NE(svg.find("touch BACKQUOTE"), std::string::npos) << name << ": the text is shown";
    EXPECT_NE(svg.find("$(touch SHELL)"), std::string::npos) << name;
  }
  const Table t = perplexity_table(s, "ppl", {run});
  const std::string latex = render_table(t, Format::kLatex);
  EXPECT_EQ(latex.find("\\input{"), std::string::npos) << latex;
  EXPECT_NE(latex.find("\\textbackslash{}input\\{/etc/hostname\\}"), std::string::npos) << latex;
  EXPECT_NE(latex.find("100\\% \\& \\$x\\_1 \\#\\{"), std::string::npos) << latex;
  const std::string html = render_table(t, Format::kHtml);
  EXPECT_EQ(html.find("</script><script>"), std::string::npos);
  EXPECT_NE(html.find("&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos)
      << html;
  const std::string report = core::read_file(write_report(s, {run}, dir_ / "report").pages.at(0));
  EXPECT_EQ(report.find("</script><script>alert(1)"), std::string::npos);
  EXPECT_NE(report.find("Run run $(touch SHELL)`touch BACKQUOTE`"), std::string::npos);
  EXPECT_NE(report.find("<figure>"), std::string::npos) << "the plots were made";
}

TEST(GnuplotQuoteTest, ControlCharactersBecomeEscapesOutsideTheSingleQuotes) {
  EXPECT_EQ(gnuplot_quote("it's"), "'it''s'");
  EXPECT_EQ(gnuplot_quote("a\nb"), "'a'.\"\\012\".'b'");
  EXPECT_EQ(gnuplot_quote("`x` $y @z"), "'`x` $y @z'");
}

// plot --out and report --out write only into a directory of their own.
TEST_F(InjectionTest, PlotsAndReportsRefuseADirectoryTheyDidNotMake) {
  {
    Store s(dir_ / "store.sqlite");
    fill(s, dir_.path(), "r", "seed", "seed");
  }
  Store s(dir_ / "store.sqlite", Store::Mode::kReadOnly);
  core::make_dirs(dir_ / "mine");
  core::write_file_atomic(dir_ / "mine/ppl.svg", "my own figure");
  EXPECT_THROW(make_plot(s, "ppl", "r", dir_ / "mine"), Error);
  EXPECT_EQ(core::read_file(dir_ / "mine/ppl.svg"), "my own figure");
  EXPECT_THROW(write_report(s, {"r"}, dir_ / "mine"), Error);
  EXPECT_THROW(make_plot(s, "ppl", "r", dir_.path()), Error) << "the directory of the store";
  EXPECT_THROW(make_plot(s, "ppl", "r", dir_ / "a\nb"), Error) << "a control character in the path";
  make_plot(s, "ppl", "r", dir_ / "new");
  make_plot(s, "loss", "r", dir_ / "new");  // a second plot joins the first
  EXPECT_TRUE(std::filesystem::exists(dir_ / "new/ppl.svg"));
  EXPECT_TRUE(std::filesystem::exists(dir_ / ("new/" + std::string(core::kOutputMarker))));
}

}  // namespace
}  // namespace upcycle::analysis
