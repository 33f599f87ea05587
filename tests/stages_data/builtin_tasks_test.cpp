// Built-in downstream tasks from held-out documents: the true continuation is really the text that
// follows the context, distractors come from elsewhere, and math answers come from the worked solution.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "stages/data/builtin_tasks.h"
#include "stages/data/documents.h"
#include "stages/data/math_problems.h"

namespace upcycle::stages {
namespace {

TEST(BuiltinTasksTest, ContinuationChoicesHoldTheTruthAtGold) {
  std::vector<Document> docs;
  for (const auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses")) {
    if (!e.is_regular_file()) continue;
    for (auto& d : read_documents(e.path().string(), DocSplit::kWholeFile)) docs.push_back(d);
  }
  ASSERT_GT(docs.size(), 4u);
  auto ex = make_builtin_examples("law", docs, 50);
  ASSERT_EQ(ex.size(), 50u);
  int golds[4] = {0, 0, 0, 0};
  for (const auto& e : ex) {
    EXPECT_EQ(e["task"], "cont/law");
    auto choices = e["choices"].get<std::vector<std::string>>();
    ASSERT_EQ(choices.size(), 4u);
    int gold = e["gold"].get<int>();
    ++golds[gold];
    std::string joined = e["context"].get<std::string>() + choices[gold];
    bool found = false;
    for (const auto& d : docs) found = found || d.text.find(joined) != std::string::npos;
    EXPECT_TRUE(found) << joined;
    for (int k = 0; k < 4; ++k) {
      if (k != gold) {
        EXPECT_NE(choices[k], choices[gold]);
      }
    }
  }
  for (int g : golds) EXPECT_GT(g, 0);  // the gold position varies
  EXPECT_EQ(make_builtin_examples("law", docs, 50), ex);  // deterministic
}

TEST(BuiltinTasksTest, MathDocumentsGiveArithmeticQuestions) {
  auto docs = generate_math_documents(5, 20000);
  auto ex = make_builtin_examples("math", docs, 20);
  ASSERT_FALSE(ex.empty());
  for (const auto& e : ex) {
    EXPECT_EQ(e["task"], "arith/math");
    std::string prompt = e["prompt"];
    EXPECT_EQ(prompt.rfind("Problem:", 0), 0u);
    EXPECT_EQ(prompt.substr(prompt.size() - 9), "Solution:");
    EXPECT_FALSE(e["answer"].get<std::string>().empty());
  }
  // The answer is the asked problem's: checked by arithmetic on the prompts of sums and products.
  int checked = 0;
  for (const auto& e : make_builtin_examples("math", generate_math_documents(6, 100000), 1000)) {
    long long a = 0, b = 0;
    char op = 0;
    std::string prompt = e["prompt"];
    if (std::sscanf(prompt.c_str(), "Problem: Compute %lld %c %lld.", &a, &op, &b) != 3) continue;
    long long want = op == '+' ? a + b : a * b;
    EXPECT_EQ(e["answer"].get<std::string>(), std::to_string(want)) << prompt;
    ++checked;
  }
  EXPECT_GT(checked, 5);
  EXPECT_EQ(extract_answer("Solution: 2 + 2 = 4.\nAnswer: 4\nProblem: next"), "4");
  EXPECT_EQ(extract_answer("no answer here"), "");
  EXPECT_EQ(extract_answer("Answer: 1\nAnswer:  17 "), "17");
}

}  // namespace
}  // namespace upcycle::stages
