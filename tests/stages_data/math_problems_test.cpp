#include "stages/data/math_problems.h"

#include <gtest/gtest.h>

#include <regex>

namespace upcycle::stages {
namespace {

TEST(MathProblemsTest, DeterministicInSeed) {
  auto a = generate_math_documents(7, 20000), b = generate_math_documents(7, 20000);
  auto c = generate_math_documents(8, 20000);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].text, b[i].text);
  EXPECT_NE(a[0].text, c[0].text);
}

// The worked answers must be right: re-check every addition and multiplication problem.
TEST(MathProblemsTest, AnswersAreCorrect) {
  std::regex add(R"(Problem: Compute (\d+) \+ (\d+)\.[\s\S]*?Answer: (\d+))");
  std::regex mul(R"(Problem: Compute (\d+) \* (\d+)\.[\s\S]*?Answer: (\d+))");
  int checked = 0;
  for (const auto& doc : generate_math_documents(3, 200000)) {
    for (std::string::size_type pos = 0;
         (pos = doc.text.find("Problem:", pos)) != std::string::npos; ++pos) {
      std::string rest = doc.text.substr(pos, doc.text.find("\n\n", pos) - pos + 1);
      std::smatch m;
      if (std::regex_search(rest, m, add) && m.position(0) == 0) {
        EXPECT_EQ(std::stoll(m[1]) + std::stoll(m[2]), std::stoll(m[3])) << rest;
        ++checked;
      } else if (std::regex_search(rest, m, mul) && m.position(0) == 0) {
        EXPECT_EQ(std::stoll(m[1]) * std::stoll(m[2]), std::stoll(m[3])) << rest;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 50);
}

}  // namespace
}  // namespace upcycle::stages
