#include "analysis/render.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace upcycle::analysis {
namespace {

tracking::ResultSet sample() {
  tracking::ResultSet rs;
  rs.columns = {"model", "ppl", "n"};
  rs.rows = {{std::string("seed"), 23.98, int64_t(10)},
             {std::string("a,\"b\""), std::monostate{}, int64_t(2)}};
  return rs;
}

TEST(RenderTest, CsvQuotesPerRfc4180) {
  EXPECT_EQ(render(sample(), Format::kCsv), "model,ppl,n\nseed,23.98,10\n\"a,\"\"b\"\"\",,2\n");
}

TEST(RenderTest, MarkdownAlignsColumns) {
  std::string md = render(sample(), Format::kTable);
  EXPECT_EQ(md.substr(0, md.find('\n')), "| model | ppl   | n   |");
}

TEST(RenderTest, JsonKeepsTypesAndNulls) {
  auto j = nlohmann::json::parse(render(sample(), Format::kJson));
  EXPECT_DOUBLE_EQ(j[0]["ppl"].get<double>(), 23.98);
  EXPECT_TRUE(j[1]["ppl"].is_null());
  EXPECT_EQ(j[0]["n"].get<int>(), 10);
}

TEST(RenderTest, UnknownFormatIsAConfigError) { EXPECT_THROW(parse_format("xml"), ConfigError); }

}  // namespace
}  // namespace upcycle::analysis
