// `upcycle params` / `upcycle flops` / `upcycle plan` on the paper recipes, through the real
// binary.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"

namespace upcycle {
namespace {

using testing::run_binary;

nlohmann::json json_of(const std::vector<std::string>& argv) {
  auto r = run_binary(argv);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  return nlohmann::json::parse(r.output);
}

TEST(AccountingCliTest, ParamsOfThe590mRecipeReproduceBamTable9) {
  auto j = json_of({UPCYCLE_BINARY, "params", UPCYCLE_SOURCE_DIR "/recipes/paper/bam_590m.yaml",
                    "--format", "json"});
  std::map<std::string, int64_t> total;
  for (const auto& m : j) total[m["model"].get<std::string>()] = m["total"].get<int64_t>();
  EXPECT_EQ(total.at("seed"), 587209728);
  EXPECT_EQ(total.at("btx"), 700480512);
  EXPECT_EQ(total.at("bam"), 776002560);
  EXPECT_EQ(total.at("bam_shared"), 738253824);
  for (const auto& m : j) {
    for (const char* key :
         {"model", "total", "active", "embedding", "attention", "ffn", "routers", "norms"}) {
      EXPECT_TRUE(m.contains(key)) << key;
    }
  }
}

TEST(AccountingCliTest, FlopsOfBamAtContext256MatchTable7Attention) {
  auto j = json_of({UPCYCLE_BINARY, "flops", UPCYCLE_SOURCE_DIR "/recipes/paper/bam_590m.yaml",
                    "--stage", "bam", "--context", "256", "--format", "json"});
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["layers"].size(), 6u);
  EXPECT_EQ(j[0]["layers"][0]["attention"].get<int64_t>(), 35651584);
  EXPECT_EQ(j[0]["context"].get<int64_t>(), 256);
}

TEST(AccountingCliTest, CompareRecipesProportions) {
  auto j = json_of({UPCYCLE_BINARY, "flops", "--compare",
                    UPCYCLE_SOURCE_DIR "/recipes/paper/bam_590m.yaml",
                    UPCYCLE_SOURCE_DIR "/recipes/mini/bam_mini.yaml", "--format", "json"});
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["recipe"], "bam_590m");
  EXPECT_EQ(j[0]["dense_params"].get<int64_t>(), 587209728);
  EXPECT_NEAR(j[0]["bam_over_btx"].get<double>(), 1.335, 0.0005);
  EXPECT_NEAR(j[0]["cm_tokens_bam"].get<double>(), 1 / 1.335, 0.001);
  EXPECT_EQ(j[1]["recipe"], "bam-mini");
  auto md = run_binary({UPCYCLE_BINARY, "flops", "--compare",
                        UPCYCLE_SOURCE_DIR "/recipes/mini/bam_mini.yaml", "--format", "markdown"});
  EXPECT_EQ(md.exit_code, 0) << md.output;
  EXPECT_NE(md.output.find("| dense_params | embedding_share |"), std::string::npos) << md.output;
  auto bad = run_binary({UPCYCLE_BINARY, "flops", "--compare",
                         UPCYCLE_SOURCE_DIR "/recipes/mini/bam_mini.yaml", "--stage", "bam"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("takes recipes alone"), std::string::npos) << bad.output;
}

TEST(AccountingCliTest, ParamsOfAModelConfigFile) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "moe.yaml",
                          "d_model: 1024\nlayers: 6\nheads: 8\nkv_heads: 8\n"
                          "ffn_hidden: 2048\nvocab: 256000\nattn_experts: 4\n"
                          "ffn_experts: 4\n");
  auto j = json_of({UPCYCLE_BINARY, "params", dir / "moe.yaml", "--format", "json"});
  EXPECT_EQ(j[0]["model"], "moe");
  EXPECT_EQ(j[0]["total"].get<int64_t>(), 776002560);
  core::write_file_atomic(dir / "bad.yaml", "d_model: 1024\nheads: 8\nffn_expert: 4\n");
  auto bad = run_binary({UPCYCLE_BINARY, "params", dir / "bad.yaml"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(
      bad.output.find(
          dir / "bad.yaml:3:1: ffn_expert: unknown key 'ffn_expert'; did you mean 'ffn_experts'?"),
      std::string::npos)
      << bad.output;
}

TEST(AccountingCliTest, PaperRecipesPlan) {
  for (const char* recipe : {"bam_590m.yaml", "bam_2b.yaml"}) {
    auto r = run_binary({UPCYCLE_BINARY, "plan",
                         std::string(UPCYCLE_SOURCE_DIR "/recipes/paper/") + recipe, "--cost"});
    EXPECT_EQ(r.exit_code, 0) << recipe << "\n" << r.output;
    // Written for Slurm: 8 GPUs per training job, time limits from the cost model (no history here:
    // the MFU assumption), and what a reproduction costs in total.
    EXPECT_NE(r.output.find("seed: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("(mfu, cuda x8) = "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("GPU-h, time limit "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("eval: no estimate for eval jobs; time limit 12:00:00 (recipe)"),
              std::string::npos)
        << r.output;
    EXPECT_NE(r.output.find("  total: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("experts/law  [train v3]"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("matching btx_dm by flops"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("tokens -"), std::string::npos) << r.output;  // no overflowed budget
  }
}

}  // namespace
}  // namespace upcycle
