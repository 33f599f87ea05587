// The 590M paper recipe's models beside BAM Tables 9 and 7 (the paper's numbers, not ours
// replayed): totals and attention FLOPs equal, and every difference that remains carries its
// reason.
#include <gtest/gtest.h>

#include "runner/accounting_report.h"

namespace upcycle::runner {
namespace {

const tracking::Cell& at(const analysis::Table& t, const std::string& row, const std::string& col) {
  size_t c = std::find(t.data.columns.begin(), t.data.columns.end(), col) - t.data.columns.begin();
  for (const auto& r : t.data.rows) {
    if (tracking::text_of(r[0]) == row) return r.at(c);
  }
  throw std::runtime_error("no row " + row);
}

TEST(AccountingPaperTest, Table9And7OfThe590MRecipe) {
  const auto models =
      models_for_accounting(UPCYCLE_SOURCE_DIR "/recipes/paper/bam_590m.yaml", {}, "");
  const analysis::Table params = accounting_vs_paper(models, "params");
  for (const char* row :
       {"Dense", "BAM (Expert KV)", "BAM (KV sharing)", "BTX top-1 (4 experts)"}) {
    EXPECT_EQ(std::get<int64_t>(at(params, row, "diff")), 0) << row << ": total parameters";
  }
  EXPECT_EQ(std::get<int64_t>(at(params, "BAM (Expert KV)", "total (ours)")), 776002560);
  EXPECT_EQ(std::get<int64_t>(at(params, "BTX top-1 (4 experts)", "active (ours)")), 587234304);
  EXPECT_NE(std::get<std::string>(at(params, "BAM (Expert KV)", "why they differ"))
                .find("one of its two routers"),
            std::string::npos);
  const analysis::Table flops = accounting_vs_paper(models, "flops");
  EXPECT_EQ(std::get<int64_t>(at(flops, "BAM (4 experts, top-1)", "attention (ours)")), 35651584);
  EXPECT_EQ(std::get<int64_t>(at(flops, "BTX (4, top-1)", "attention (ours)")), 8912896);
  for (const auto& r : flops.data.rows) {
    if (tracking::text_of(r[1]) == "(not in recipe)") continue;
    EXPECT_EQ(tracking::text_of(r.back()).find("unexplained"), std::string::npos)
        << tracking::text_of(r[0]);
  }
}

}  // namespace
}  // namespace upcycle::runner
