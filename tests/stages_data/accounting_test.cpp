#include "stages/model/accounting.h"

#include <gtest/gtest.h>

#include "stages/upcycle/upcycle_config.h"

namespace upcycle::stages {
namespace {

// BAM Table 8, small scale: d 1024, 6 layers, 8/8 heads, SwiGLU hidden 2048 ("FFN dimension" 4096 is
// the fused gate+up width), vocab 256000, untied, one LayerNorm per block plus a final one.
ModelConfig paper_small() {
  ModelConfig c;
  c.d_model = 1024;
  c.layers = 6;
  c.heads = 8;
  c.kv_heads = 8;
  c.ffn_hidden = 2048;
  c.vocab = 256000;
  c.seq_len = 256;
  c.block = "parallel";
  c.tied_embeddings = false;
  return c;
}

TEST(AccountingTest, ReproducesBamTable9Totals) {
  ModelConfig dense = paper_small();
  ModelConfig mix;  // top-1, soft attention, expert KV
  ModelConfig shared = mix;
  shared.attn_kv = "shared";
  struct Case {
    const char* name;
    ModelConfig config;
    int64_t total;
  } cases[] = {
      {"dense", dense, 587209728},
      {"btx top-1, 4 experts", upcycled_config("btx", dense, mix, 4), 700480512},
      {"bam expert kv", upcycled_config("bam", dense, mix, 4), 776002560},
      {"bam shared kv", upcycled_config("bam", dense, shared, 4), 738253824},
  };
  for (const auto& c : cases) EXPECT_EQ(count_params(c.config).total, c.total) << c.name;
}

TEST(AccountingTest, ActiveCountsFollowTheDocumentedConvention) {
  ModelConfig dense = paper_small();
  EXPECT_EQ(count_params(dense).active, 587209728);
  // BTX top-1: dense + one router per layer (the paper's 587,234,304).
  EXPECT_EQ(count_params(upcycled_config("btx", dense, ModelConfig{}, 4)).active, 587234304);
  // BAM expert KV: dense + 3 soft-routed attention experts + both routers; the paper's 662,731,776
  // counts one router only (papers.md §1.3).
  EXPECT_EQ(count_params(upcycled_config("bam", dense, ModelConfig{}, 4)).active, 662731776 + 24576);
  // BAM shared KV: W_k, W_v once, W_q, W_o of all 4 experts, both routers.
  ModelConfig shared;
  shared.attn_kv = "shared";
  EXPECT_EQ(count_params(upcycled_config("bam", dense, shared, 4)).active, 625007616);
}

}  // namespace
}  // namespace upcycle::stages
