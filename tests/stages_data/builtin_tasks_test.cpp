// Built-in downstream tasks from held-out documents: the true continuation is really the text that
// follows the context, distractors come from elsewhere, and math answers come from the worked
// solution.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "core/atomic_file.h"
#include "stages/data/builtin_tasks.h"
#include "stages/data/documents.h"
#include "stages/data/math_problems.h"

namespace upcycle::stages {
namespace {

std::vector<Document> licenses() {
  std::vector<Document> docs;
  for (const auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses")) {
    if (!e.is_regular_file()) continue;
    for (auto& d : read_documents(e.path().string(), DocSplit::kWholeFile)) docs.push_back(d);
  }
  return docs;
}

std::vector<nlohmann::json> of_task(const std::vector<nlohmann::json>& ex,
                                    const std::string& task) {
  std::vector<nlohmann::json> out;
  for (const auto& e : ex) {
    if (e["task"] == task) out.push_back(e);
  }
  return out;
}

TEST(BuiltinTasksTest, ContinuationChoicesHoldTheTruthAtGold) {
  std::vector<Document> docs = licenses();
  ASSERT_GT(docs.size(), 4u);
  auto all = make_builtin_examples("law", {{"law", docs}}, 50);
  auto ex = of_task(all, "cont/law");
  ASSERT_EQ(ex.size(), 50u);
  EXPECT_EQ(all.size(), 50u);  // one domain: no domain/ task
  int golds[4] = {0, 0, 0, 0};
  for (const auto& e : ex) {
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
  for (int g : golds) EXPECT_GT(g, 0);                                // the gold position varies
  EXPECT_EQ(make_builtin_examples("law", {{"law", docs}}, 50), all);  // deterministic
}

// domain/: the truth follows the context in its own domain's documents; each other domain gives one
// distractor of about the truth's length, found in that domain's documents.
TEST(BuiltinTasksTest, DomainChoicesComeOnePerOtherDomain) {
  TestDocuments docs{{"law", licenses()}, {"math", generate_math_documents(5, 40000)}};
  auto ex = of_task(make_builtin_examples("law", docs, 30), "domain/law");
  ASSERT_EQ(ex.size(), 30u);
  for (const auto& e : ex) {
    auto choices = e["choices"].get<std::vector<std::string>>();
    ASSERT_EQ(choices.size(), 2u);
    const int gold = e["gold"].get<int>();
    const std::string joined = e["context"].get<std::string>() + choices[gold];
    bool in_law = false, in_math = false;
    for (const auto& d : docs["law"]) in_law = in_law || d.text.find(joined) != std::string::npos;
    for (const auto& d : docs["math"])
      in_math = in_math || d.text.find(choices[1 - gold]) != std::string::npos;
    EXPECT_TRUE(in_law) << joined;
    EXPECT_TRUE(in_math) << choices[1 - gold];
    EXPECT_GE(choices[1 - gold].size(), choices[gold].size());
    EXPECT_LE(choices[1 - gold].size(), choices[gold].size() + 52);
  }
}

// arith-mc/: the context is a whole worked problem up to "Answer:", the truth its answer, and each
// distractor the answer of another problem of the same kind.
TEST(BuiltinTasksTest, ArithmeticChoicesAreAnswersOfOtherProblemsOfTheSameKind) {
  auto docs = generate_math_documents(7, 60000);
  auto ex = of_task(make_builtin_examples("math", {{"math", docs}}, 40), "arith-mc/math");
  ASSERT_GT(ex.size(), 20u);
  for (const auto& e : ex) {
    const std::string context = e["context"];
    EXPECT_EQ(context.rfind("Problem:", 0), 0u);
    EXPECT_EQ(context.substr(context.size() - 7), "Answer:");
    auto choices = e["choices"].get<std::vector<std::string>>();
    ASSERT_EQ(choices.size(), 4u);
    const std::string truth = choices[e["gold"].get<int>()];
    EXPECT_EQ(" " + extract_answer(context + truth), truth);
    const std::string first_line = context.substr(0, context.find('\n'));
    const std::string kind = first_line.substr(0, first_line.find_first_of("0123456789"));
    for (const auto& c : choices) {
      if (c == truth) continue;
      bool found = false;  // some document's first problem is of the same kind and has this answer
      for (const auto& d : docs) {
        const std::string first = d.text.substr(0, d.text.find("\nProblem:"));
        found = found || (first.rfind(kind, 0) == 0 && " " + extract_answer(first) == c);
      }
      EXPECT_TRUE(found) << c;
    }
  }
}

TEST(BuiltinTasksTest, MathDocumentsGiveArithmeticQuestions) {
  auto ex =
      of_task(make_builtin_examples("math", {{"math", generate_math_documents(5, 20000)}}, 20),
              "arith/math");
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
  for (const auto& e :
       of_task(make_builtin_examples("math", {{"math", generate_math_documents(6, 100000)}}, 1000),
               "arith/math")) {
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
