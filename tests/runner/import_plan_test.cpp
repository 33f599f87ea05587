// Planning recipes with `kind: import` stages: the checkpoint's config is read at load time (errors
// at the `path:` line), its tokenizer becomes the data's, and `model:` is optional. No LibTorch.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/sha256.h"
#include "runner/plan.h"
#include "tests/support/temp_dir.h"

namespace upcycle::runner {
namespace {

// A Hugging Face directory as far as planning reads it: config.json, a tokenizer, a weights header.
void write_hf_dir(const std::string& dir, const nlohmann::json& config,
                  const std::string& tokenizer = "sp-bytes") {
  core::make_dirs(dir);
  core::write_file_atomic(dir + "/config.json", config.dump());
  core::write_file_atomic(dir + "/tokenizer.model", tokenizer);
  core::write_file_atomic(dir + "/model.safetensors", std::string("\x02\0\0\0\0\0\0\0{}", 10));
}

nlohmann::json llama() {
  return {{"model_type", "llama"},    {"hidden_size", 64},
          {"num_hidden_layers", 2},   {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"intermediate_size", 128},
          {"vocab_size", 600},        {"max_position_embeddings", 256}};
}

std::string recipe(const std::string& hf, const std::string& extra = "") {
  return "name: t\ndata: { domains: [general, code] }\nstages:\n  data: { kind: prepare }\n  seed: "
         "{ kind: import, path: " +
         hf +
         ", seq_len: 32 }\n  experts: { kind: branch, from: seed, domains: [code], budget: { "
         "tokens: 2k } }\n" +
         extra;
}

std::string error_of(const std::string& text) {
  try {
    make_plan(parse_recipe(text, "r.yaml"));
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(ImportPlanTest, TheImportedModelAndTokenizerFlowIntoThePlan) {
  testing::TempDir dir;
  write_hf_dir(dir / "hf", llama());
  Plan p = make_plan(parse_recipe(recipe(dir / "hf"), "r.yaml"));
  const PlannedJob* seed = p.find("seed");
  ASSERT_NE(seed, nullptr);
  EXPECT_EQ(seed->model.d_model, 64);
  EXPECT_EQ(seed->model.seq_len, 32);
  EXPECT_EQ(seed->model.block, stages::BlockType::kSequential);
  EXPECT_EQ(p.find("experts/code")->model.vocab, 600);
  const auto& tok = p.find("data")->spec["tokenizer"];
  EXPECT_EQ(tok["kind"], "file");
  EXPECT_EQ(tok["sha256"], core::sha256_hex("sp-bytes"));
  // The key follows the content, not the path: a copy elsewhere plans the same import job.
  write_hf_dir(dir / "copy", llama());
  EXPECT_EQ(make_plan(parse_recipe(recipe(dir / "copy"), "r.yaml")).find("seed")->key, seed->key);
}

// Imported checkpoints as domain experts of an upcycle stage, beside a branch of the imported seed.
TEST(ImportPlanTest, ImportsServeAsExpertsOfAnUpcycle) {
  testing::TempDir dir;
  write_hf_dir(dir / "seed", llama());
  write_hf_dir(dir / "law", llama());  // the same tokenizer, another expert's weights
  Plan p = make_plan(parse_recipe(
      recipe(dir / "seed", "  law: { kind: import, path: " + dir / "law" +
                               ", seq_len: 32 }\n"
                               "  bam: { kind: upcycle, method: bam, from: [experts, law] }\n"),
      "r.yaml"));
  const PlannedJob* bam = p.find("bam");
  ASSERT_NE(bam, nullptr);
  EXPECT_EQ(bam->model.attn_experts, 3);  // the seed, experts/code, law
  EXPECT_EQ(bam->spec["inputs"].size(), 3u);
}

// Experts whose dimensions differ are refused when the plan is made, naming both and the dimension;
// the surgery checks the checkpoints again (stages/upcycle/surgery.cpp).
TEST(ImportPlanTest, ExpertsOfAnotherShapeAreRefusedAtPlanTime) {
  testing::TempDir dir;
  write_hf_dir(dir / "seed", llama());
  nlohmann::json wide = llama();
  wide["intermediate_size"] = 256;
  write_hf_dir(dir / "law", wide);
  const std::string e = error_of(
      recipe(dir / "seed", "  law: { kind: import, path: " + dir / "law" +
                               ", seq_len: 32 }\n"
                               "  bam: { kind: upcycle, method: bam, from: [experts, law] }\n"));
  EXPECT_NE(e.find("stages.bam.from: 'seed' and 'law' cannot be experts of one model: they differ "
                   "in ffn_hidden: 128 vs 256"),
            std::string::npos)
      << e;
}

TEST(ImportPlanTest, BadCheckpointsAreErrorsAtThePathLine) {
  testing::TempDir dir;
  EXPECT_NE(error_of(recipe(dir / "nope")).find("r.yaml:5:"), std::string::npos)
      << error_of(recipe(dir / "nope"));
  EXPECT_NE(error_of(recipe(dir / "nope")).find("is not a directory"), std::string::npos);
  nlohmann::json gpt2 = llama();
  gpt2["model_type"] = "gpt2";
  write_hf_dir(dir / "gpt2", gpt2);
  const std::string e = error_of(recipe(dir / "gpt2"));
  EXPECT_NE(e.find("stages.seed.path"), std::string::npos) << e;
  EXPECT_NE(e.find("key 'model_type': 'gpt2' is not supported"), std::string::npos) << e;
  nlohmann::json fractional = llama();
  fractional["num_hidden_layers"] = 2.7;  // nlohmann would read 2
  write_hf_dir(dir / "frac", fractional);
  const std::string f = error_of(recipe(dir / "frac"));
  EXPECT_NE(f.find("key 'num_hidden_layers': expected an integer, got 2.7"), std::string::npos)
      << f;
  nlohmann::json negative = llama();
  negative["vocab_size"] = -1;
  write_hf_dir(dir / "neg", negative);
  EXPECT_NE(error_of(recipe(dir / "neg")).find("vocab: must be in [1, 2^32]"), std::string::npos)
      << error_of(recipe(dir / "neg"));
  write_hf_dir(dir / "a", llama(), "tokenizer a");
  write_hf_dir(dir / "b", llama(), "tokenizer b");
  const std::string mixed =
      error_of(recipe(dir / "a", "  other: { kind: import, path: " + dir / "b" + " }\n"));
  EXPECT_NE(mixed.find("bring different tokenizers"), std::string::npos) << mixed;
  // Without model:, training from scratch has nothing to build.
  const std::string scratch = error_of(
      recipe(dir / "a", "  fresh: { kind: train, mix: { code: 1 }, budget: { tokens: 1k } }\n"));
  EXPECT_NE(scratch.find("trains a model from scratch"), std::string::npos) << scratch;
}

// {hf} exports a model in the Hugging Face class that computes it; a model none computes is an
// error at plan time naming hf_format, before anything runs.
TEST(ImportPlanTest, HfPlaceholderPicksTheClassOrRefusesAtPlanTime) {
  const std::string base = R"(name: t
data: { domains: [general, code], tokenizer: { vocab: 512 } }
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32, block: sequential, norm: rmsnorm }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0 }, budget: { tokens: 2k } }
  experts: { kind: branch, from: seed, domains: [code], budget: { tokens: 2k } }
  bam: { kind: upcycle, method: bam, from: [experts] }
  btx: { kind: upcycle, method: btx, from: [experts], ffn: { top_k: 1, routing: topk_then_softmax } }
  harness: { kind: command, models: [MODEL], argv: [run, "{hf}"] }
)";
  auto with = [&](const std::string& model) {
    std::string t = base;
    t.replace(t.find("MODEL"), 5, model);
    return t;
  };
  Plan p = make_plan(parse_recipe(with("seed, btx"), "r.yaml"));
  EXPECT_EQ(p.find("harness/seed")->spec["hf"]["format"], "llama");
  EXPECT_EQ(p.find("harness/btx")->spec["hf"]["format"], "mixtral");
  const std::string bam = error_of(with("bam"));
  EXPECT_NE(bam.find("stages.harness.hf_format"), std::string::npos) << bam;
  EXPECT_NE(bam.find("set hf_format: bam"), std::string::npos) << bam;
  EXPECT_EQ(make_plan(parse_recipe(with("bam"), "r.yaml", {"stages.harness.hf_format=native"}))
                .find("harness/bam")
                ->spec["hf"]["format"],
            "native");
  EXPECT_EQ(make_plan(parse_recipe(with("bam"), "r.yaml", {"stages.harness.hf_format=bam"}))
                .find("harness/bam")
                ->spec["hf"]["format"],
            "native");  // one name in the key, whichever the recipe used
}

}  // namespace
}  // namespace upcycle::runner
