// The command stage's pieces: argv templates, running a program without a shell, and the
// lm-evaluation-harness results parser on a results file in the harness's v0.4 layout.
#include <gtest/gtest.h>

#include <filesystem>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "stages/command/command.h"
#include "stages/command/lm_eval_results.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

TEST(CommandTemplateTest, ExpandsPlaceholdersAndLiteralBraces) {
  std::map<std::string, std::string> v = {{"out", "/o"}, {"model", "bam_dm"}};
  EXPECT_EQ(expand_template("pretrained={out}/{model},x", v), "pretrained=/o/bam_dm,x");
  EXPECT_EQ(expand_template("{{\"k\": 1}}", v), "{\"k\": 1}");
  EXPECT_EQ(expand_template("no placeholders", v), "no placeholders");
  EXPECT_THROW(expand_template("{checkpoint}", v), std::invalid_argument);
  EXPECT_THROW(expand_template("{out", v), std::invalid_argument);
  EXPECT_THROW(expand_template("a}b", v), std::invalid_argument);
}

TEST(RunCommandTest, ExitCodesEnvAndNoShell) {
  testing::TempDir dir;
  // The argument is passed as one argv entry: ';' and '$' are not interpreted.
  EXPECT_EQ(run_command({{"touch", "a;b$X"}, {}, dir.path()}), 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "a;b$X"));
  EXPECT_EQ(run_command({{"false"}, {}, dir.path()}), 1);
  EXPECT_EQ(run_command({{"sh", "-c", "test \"$UPCYCLE_T\" = yes"}, {{"UPCYCLE_T", "yes"}}, ""}),
            0);
  EXPECT_THROW(run_command({{"/no/such/program"}, {}, ""}), StageError);
}

TEST(LmEvalResultsTest, ParsesMetricsFiltersStderrAndCounts) {
  auto doc = core::read_json_file(UPCYCLE_SOURCE_DIR "/tests/fixtures/lm_eval_results.json");
  auto rows = parse_lm_eval_results(doc, "bam_dm", "fixture");
  ASSERT_EQ(rows.size(), 5u);  // arc_easy acc/acc_norm, gsm8k x2 filters, mmlu; no stderr rows
  auto find = [&](const std::string& task, const std::string& metric, const std::string& filter) {
    for (const auto& r : rows) {
      if (r.task == task && r.metric == metric && r.filter == filter) return r;
    }
    ADD_FAILURE() << task << " " << metric << " " << filter;
    return core::EvalRow{};
  };
  auto acc = find("arc_easy", "acc_norm", "none");
  EXPECT_EQ(acc.model, "bam_dm");
  EXPECT_DOUBLE_EQ(acc.value, 0.2651);
  EXPECT_DOUBLE_EQ(acc.stderr_value.value(), 0.009057);
  EXPECT_EQ(acc.n, 2376);
  EXPECT_EQ(acc.n_shot.value(), 0);
  auto strict = find("gsm8k", "exact_match", "strict-match");
  EXPECT_DOUBLE_EQ(strict.stderr_value.value(), 0.003366);
  EXPECT_EQ(strict.n, 100);  // effective samples (--limit), not original
  EXPECT_EQ(strict.n_shot.value(), 5);
  auto flexible = find("gsm8k", "exact_match", "flexible-extract");
  EXPECT_FALSE(flexible.stderr_value.has_value());  // "N/A"
  auto mmlu = find("mmlu", "acc", "none");
  EXPECT_EQ(mmlu.n, 0);  // no n-samples entry
}

TEST(LmEvalResultsTest, OlderFormatAndBadDocuments) {
  auto rows = parse_lm_eval_results(
      nlohmann::json::parse(R"({"results": {"piqa": {"acc": 0.6, "acc_stderr": 0.01}}})"), "m",
      "old");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].filter, "none");
  EXPECT_DOUBLE_EQ(rows[0].stderr_value.value(), 0.01);
  EXPECT_THROW(parse_lm_eval_results(nlohmann::json::parse("{\"res\": {}}"), "m", "x"), StageError);
  EXPECT_THROW(parse_lm_eval_results(nlohmann::json::parse("[1]"), "m", "x"), StageError);
}

TEST(LmEvalResultsTest, FindsTheNewestResultsFileBelowADirectory) {
  testing::TempDir dir;
  EXPECT_THROW(find_lm_eval_results(dir.path()), StageError);
  core::make_dirs(dir / "org__model");
  core::write_file_atomic(dir / "org__model/results_2026-01-01.json", "{}");
  core::write_file_atomic(dir / "org__model/samples_arc.jsonl", "{}");
  EXPECT_EQ(find_lm_eval_results(dir.path()), dir / "org__model/results_2026-01-01.json");
  EXPECT_EQ(find_lm_eval_results(dir / "org__model/samples_arc.jsonl"),
            dir / "org__model/samples_arc.jsonl");
  EXPECT_THROW(find_lm_eval_results(dir / "missing"), StageError);
}

}  // namespace
}  // namespace upcycle::stages
