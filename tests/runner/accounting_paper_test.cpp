// The 590M paper recipe's models beside BAM Tables 9 and 7 (the paper's numbers, not ours
// replayed): totals and attention FLOPs equal, and every difference that remains carries its
// reason.
#include <gtest/gtest.h>

#include "runner/accounting_report.h"
#include "runner/plan.h"
#include "runner/recipe.h"

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

Proportions of(const char* recipe) {
  return proportions_of(
      make_plan(load_recipe(std::string(UPCYCLE_SOURCE_DIR "/recipes/") + recipe)));
}

// The 590M recipe's proportions from Table 9's totals and Table 10's formulas at its context of
// 2048: one layer's BTX attention is Table 7's 8,912,896 at context 256 plus 2 x (2048 - 256) x d
// more score FLOPs, BAM's four times that; FFN 3 x d x d_ff = 12,582,912 each; routers 2·E·d per
// router; head 2·d·V.
TEST(ProportionsTest, The590MRecipeFromThePapersTables) {
  const Proportions p = of("paper/bam_590m.yaml");
  EXPECT_EQ(p.dense_params, 587209728);
  EXPECT_DOUBLE_EQ(p.embedding_share, 2.0 * 256000 * 1024 / 587209728);
  const double attention = 8912896 + 2.0 * (2048 - 256) * 1024, ffn = 12582912,
               head = 2.0 * 1024 * 256000;
  const double btx = 6 * (attention + ffn + 2 * 4 * 1024) + head;
  const double bam = 6 * (4 * attention + ffn + 2 * 2 * 4 * 1024) + head;
  EXPECT_DOUBLE_EQ(p.bam_over_btx, bam / btx);  // 1.335
  EXPECT_DOUBLE_EQ(p.head_share, head / (6 * (attention + ffn) + head));
  EXPECT_NEAR(p.attention_share + p.ffn_share + p.head_share, 1.0, 1e-12);
  EXPECT_GT(p.bam_shared_over_btx, 1.0);
  EXPECT_LT(p.bam_shared_over_btx, p.bam_over_btx);
}

// The contract that makes the mini's compute-matched rows mean what the paper's mean.
TEST(ProportionsTest, TheMiniKeepsThe590MRecipesRatios) {
  const Proportions paper = of("paper/bam_590m.yaml"), mini = of("mini/bam_mini.yaml");
  EXPECT_NEAR(mini.bam_over_btx / paper.bam_over_btx, 1.0, 0.10)
      << "mini " << mini.bam_over_btx << " against 590M " << paper.bam_over_btx;
  EXPECT_GE(mini.embedding_share, 0.60);
}

}  // namespace
}  // namespace upcycle::runner
