// Downstream scoring against an independent computation: each choice's log-likelihood is recomputed
// here from one forward pass over context + choice (log_softmax, gather, sum over the choice's
// tokens), and acc / acc_norm must be the argmax decisions lm-evaluation-harness would make on
// them.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/data/math_problems.h"
#include "stages/data/tokenizer.h"
#include "stages/eval/tasks.h"
#include "tests/support/model_configs.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

struct Fixture {
  testing::TempDir dir;
  std::unique_ptr<Tokenizer> tok;
  TransformerLm model{nullptr};
  Fixture() {
    std::string text;
    for (const auto& d : generate_math_documents(3, 40000)) text += d.text;
    core::write_file_atomic(dir / "sample.txt", text);
    train_tokenizer(dir / "sample.txt", dir / "tok", {320, "bpe", 1, 0});
    tok = std::make_unique<Tokenizer>(dir / "tok.model");
    torch::manual_seed(7);
    auto cfg = testing::small_config(320);
    cfg.seq_len = 128;
    model = TransformerLm(cfg);
    model->eval();
  }
};

double reference_loglik(TransformerLm& model, const Tokenizer& tok, const std::string& ctx,
                        const std::string& cont) {
  torch::NoGradGuard g;
  auto whole = tok.encode(ctx + cont);
  auto n_ctx = tok.encode(ctx).size();
  std::vector<int64_t> ids(whole.begin(), whole.end());
  auto x = torch::tensor(ids).unsqueeze(0);
  auto logp = torch::log_softmax(
      model->forward(x.narrow(1, 0, x.size(1) - 1)).logits_BTV.to(torch::kFloat64), -1)[0];
  double sum = 0;
  for (size_t t = n_ctx; t < whole.size(); ++t)
    sum += logp[static_cast<int64_t>(t) - 1][ids[t]].item<double>();
  return sum;
}

TEST(TasksTest, MultipleChoiceMatchesAnIndependentLoglikelihood) {
  Fixture f;
  const std::vector<std::string> contexts = {"Problem: Compute 12 + 30.\nSolution:", "Answer: 4",
                                             "Problem: Divide 81 by"};
  const std::vector<std::string> choices = {" Add column", " 42\n", " 9.",
                                            " Multiply 3 by 4 and then add the rest"};
  std::vector<TaskExample> examples;
  int expect_acc = 0, expect_norm = 0, decisions_differ = 0;
  for (const auto& ctx : contexts) {
    std::vector<double> ll, norm;
    for (const auto& c : choices) {
      ll.push_back(reference_loglik(f.model, *f.tok, ctx, c));
      norm.push_back(ll.back() / double(c.size()));  // ASCII: characters = bytes
    }
    decisions_differ += first_argmax(ll) != first_argmax(norm);
    // Every gold position once, and once more the choice the unnormalised loglik picks.
    std::vector<int> golds = {0, 1, 2, 3, static_cast<int>(first_argmax(ll))};
    for (int gold : golds) {
      expect_acc += first_argmax(ll) == static_cast<size_t>(gold);
      expect_norm += first_argmax(norm) == static_cast<size_t>(gold);
      examples.push_back({"t", ctx, choices, gold, "", "", {}});
    }
  }
  auto scores = evaluate_tasks(f.model, *f.tok, examples, 0, 8);
  ASSERT_EQ(scores.size(), 2u);
  const double n = double(examples.size());
  for (const auto& s : scores) {
    EXPECT_EQ(s.n, 15);
    double want = (s.metric == "acc" ? expect_acc : expect_norm) / n;
    EXPECT_DOUBLE_EQ(s.value, want) << s.metric;
    EXPECT_NEAR(s.stderr_value, std::sqrt(want * (1 - want) * n / (n - 1) / n), 1e-12) << s.metric;
  }
  // Length normalisation changes a decision here (a long choice has a much lower total loglik), so
  // acc and acc_norm differ and a swap of the two would fail.
  EXPECT_GT(decisions_differ, 0);
  EXPECT_NE(expect_acc, expect_norm);
}

TEST(TasksTest, StatisticsFollowTheHarness) {
  auto [m, se] = mean_and_stderr({1, 0, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m, 0.6);
  EXPECT_NEAR(se, std::sqrt(0.3 / 5), 1e-15);         // sample variance 0.3, over n
  EXPECT_EQ(first_argmax({1.0, 3.0, 3.0, 2.0}), 1u);  // the first maximum, as numpy
  EXPECT_EQ(mean_and_stderr({1}).second, 0.0);
}

TEST(TasksTest, GenerationStopsAndScoresExactMatch) {
  Fixture f;
  std::vector<TaskExample> ex = {
      {"gen", "", {}, -1, "Problem: Compute 1 + 1.\nSolution:", "2", {"\n"}}};
  auto scores = evaluate_tasks(f.model, *f.tok, ex, 0, 12);
  ASSERT_EQ(scores.size(), 1u);
  EXPECT_EQ(scores[0].metric, "exact_match");
  EXPECT_EQ(scores[0].n, 1);
  EXPECT_TRUE(scores[0].value == 0.0 || scores[0].value == 1.0);
}

TEST(TasksTest, TaskFilesAreValidatedLineByLine) {
  testing::TempDir dir;
  core::write_file_atomic(
      dir / "ok.jsonl",
      "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\"1\", \"2\"], \"gold\": 1}\n"
      "{\"task\": \"b\", \"prompt\": \"p\", \"answer\": \"q\", \"until\": [\"\\n\"]}\n");
  auto ex = load_task_file(dir / "ok.jsonl");
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_FALSE(ex[0].is_generation());
  EXPECT_TRUE(ex[1].is_generation());
  core::write_file_atomic(
      dir / "bad.jsonl",
      "{\"task\": \"a\", \"context\": \"x\", \"choices\": [\"1\", \"2\"], \"gold\": 2}\n");
  try {
    load_task_file(dir / "bad.jsonl");
    ADD_FAILURE();
  } catch (const StageError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:1: needs 2 or more choices"), std::string::npos)
        << e.what();
  }
  core::write_file_atomic(dir / "bad2.jsonl", "\n{\"task\": \"a\", \"prompt\": 3}\n");
  EXPECT_THROW(load_task_file(dir / "bad2.jsonl"), StageError);
  EXPECT_THROW(load_task_file(dir / "missing.jsonl"), StageError);
}

}  // namespace
}  // namespace upcycle::stages
