// Hugging Face checkpoints with something wrong: every case a StageError naming the file and the
// tensor or key. No transformers needed (the referee tests are tests/interop/).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/arch/hf_config.h"
#include "stages/data/hf_tokenizer.h"
#include "stages/io/checkpoint.h"
#include "stages/io/hf_export.h"
#include "stages/io/hf_weights.h"
#include "tests/support/model_configs.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

using testing::TempDir;

// The message of the StageError `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const StageError& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_ERROR_HAS(call, ...)                                                             \
  do {                                                                                          \
    const std::string msg = error_of([&] { call; });                                            \
    EXPECT_FALSE(msg.empty()) << #call " did not throw";                                        \
    for (const char* part : {__VA_ARGS__}) EXPECT_NE(msg.find(part), std::string::npos) << msg; \
  } while (0)

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = char((n >> (8 * i)) & 0xff);
  return s;
}

// A safetensors file from a header and a data section, as a hostile writer might make one.
std::string file_with(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

TEST(HfIoTest, HostileSafetensorsFilesAreRefusedNamingTheReason) {
  TempDir dir;
  auto write = [&](const std::string& bytes) {
    core::write_file_atomic(dir / "x.safetensors", bytes);
    return dir / "x.safetensors";
  };
  EXPECT_ERROR_HAS(read_safetensors(write(le64(1000) + "{}")), "x.safetensors", "exceeds the file");
  EXPECT_ERROR_HAS(read_safetensors(write("abc")), "shorter than its 8-byte header");
  EXPECT_ERROR_HAS(read_safetensors(write(file_with(
                       "{\"w\": {\"dtype\": \"F64\", \"shape\": [1], \"data_offsets\": [0, 8]}}",
                       std::string(8, '\0')))),
                   "tensor w", "dtype F64");
  EXPECT_ERROR_HAS(read_safetensors(write(file_with(
                       "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]}}",
                       std::string(8, '\0')))),
                   "tensor w", "truncated");
  EXPECT_ERROR_HAS(read_safetensors(write(file_with(
                       "{\"w\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 8]}}",
                       std::string(16, '\0')))),
                   "tensor w", "do not match its shape");
  EXPECT_ERROR_HAS(read_safetensors(write(file_with(
                       "{\"w\": {\"dtype\": \"F32\", \"shape\": [-1], \"data_offsets\": [0, 4]}}",
                       std::string(4, '\0')))),
                   "tensor w", "invalid shape");
  EXPECT_ERROR_HAS(read_safetensors(write(file_with("[1, 2]", ""))), "not a JSON object");
  EXPECT_ERROR_HAS(read_safetensors(write(file_with("{not json", ""))), "not JSON");
}

TEST(HfIoTest, ShardedDirectoriesRoundTripAndHostileIndexesAreRefused) {
  TempDir dir;
  TensorMap t = {{"a", torch::arange(6, torch::kFloat32).reshape({2, 3})},
                 {"b", torch::ones({5}, torch::kBFloat16)},
                 {"c", torch::full({3}, 2.5, torch::kFloat16)}};
  auto files = write_safetensors_dir(dir.path(), t, {{"format", "pt"}},
                                     16);  // 24 | 10 + 6 bytes: two shards
  EXPECT_EQ(files,
            (std::vector<std::string>{"model-00001-of-00002.safetensors",
                                      "model-00002-of-00002.safetensors", kSafetensorsIndexFile}));
  const TensorMap back = read_safetensors_dir(dir.path());
  ASSERT_EQ(back.size(), 3u);
  for (const auto& [name, x] : t) {
    EXPECT_EQ(back.at(name).scalar_type(), x.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back.at(name), x)) << name;
  }
  const std::string index = dir / kSafetensorsIndexFile;
  core::write_file_atomic(index, R"({"weight_map": {"a": "../../etc/passwd"}})");
  EXPECT_ERROR_HAS(read_safetensors_dir(dir.path()), "not a plain file name");
  core::write_file_atomic(index, R"({"weight_map": {"zz": "model-00001-of-00002.safetensors"}})");
  EXPECT_ERROR_HAS(read_safetensors_dir(dir.path()), "tensor zz", "lacks it");
  core::write_file_atomic(index, R"({"weights": {}})");
  EXPECT_ERROR_HAS(read_safetensors_dir(dir.path()), kSafetensorsIndexFile,
                   "not a safetensors index");
  TempDir empty;
  EXPECT_ERROR_HAS(read_safetensors_dir(empty.path()), "no model.safetensors");
}

nlohmann::json llama_config() {
  return {{"model_type", "llama"},    {"hidden_size", 32},
          {"num_hidden_layers", 2},   {"num_attention_heads", 4},
          {"num_key_value_heads", 2}, {"intermediate_size", 48},
          {"vocab_size", 97},         {"max_position_embeddings", 16}};
}

TEST(HfIoTest, ConfigsWithOptionsOurModelLacksAreRefusedNamingTheKey) {
  auto refused = [](nlohmann::json edit) {
    nlohmann::json c = llama_config();
    c.merge_patch(edit);
    return error_of([&] { hf_model_from_config(c, "cfg.json"); });
  };
  EXPECT_NE(refused({{"model_type", "gpt2"}}).find("key 'model_type': 'gpt2' is not supported"),
            std::string::npos);
  EXPECT_NE(refused({{"hidden_size", nullptr}}).find("key 'hidden_size': missing"),
            std::string::npos);
  EXPECT_NE(refused({{"rope_scaling", {{"rope_type", "llama3"}, {"factor", 8}}}})
                .find("key 'rope_scaling'"),
            std::string::npos);
  EXPECT_NE(refused({{"attention_bias", true}}).find("key 'attention_bias'"), std::string::npos);
  EXPECT_NE(refused({{"hidden_act", "gelu"}}).find("key 'hidden_act'"), std::string::npos);
  EXPECT_NE(refused({{"head_dim", 16}}).find("key 'head_dim'"), std::string::npos);
  EXPECT_NE(refused({{"sliding_window", 8}}).find("key 'sliding_window'"), std::string::npos);
  EXPECT_NE(refused({{"num_key_value_heads", 3}}).find("kv_heads"), std::string::npos);
  EXPECT_NE(refused({{"vocab_size", "many"}}).find("key 'vocab_size': has the wrong type"),
            std::string::npos);
  nlohmann::json cohere = llama_config();
  cohere["model_type"] = "cohere";
  cohere["use_qk_norm"] = true;
  EXPECT_NE(error_of([&] { hf_model_from_config(cohere, "c.json"); }).find("key 'use_qk_norm'"),
            std::string::npos);
  // What is accepted maps as documented.
  const HfModel m = hf_model_from_config(llama_config(), "cfg.json", 8);
  EXPECT_EQ(m.model.block, BlockType::kSequential);
  EXPECT_EQ(m.model.norm, Norm::kRmsNorm);
  EXPECT_EQ(m.model.seq_len, 8);
  EXPECT_EQ(m.model.kv_heads, 2);
}

// A checkpoint of our dense model written in the Llama layout, then damaged one way at a time.
TEST(HfIoTest, CheckpointsWithMissingUnexpectedOrMisshapedTensorsAreRefusedNamingTheTensor) {
  ModelConfig c = testing::small_config();
  c.block = BlockType::kSequential;
  c.norm = Norm::kRmsNorm;
  TransformerLm model(c);
  const TensorMap hf = to_hf_tensors(state_of(model), c, HfFormat::kLlama, at::kFloat);
  const HfModel cfg =
      hf_model_from_config(hf_config_for(c, HfFormat::kLlama, "float32", {}), "config.json");
  EXPECT_EQ(from_hf_tensors(hf, cfg, "ckpt").size(), state_of(model).size());
  TensorMap missing = hf;
  missing.erase("model.layers.1.mlp.up_proj.weight");
  EXPECT_ERROR_HAS(from_hf_tensors(missing, cfg, "ckpt"), "ckpt",
                   "missing tensor model.layers.1.mlp.up_proj.weight");
  TensorMap extra = hf;
  extra["model.layers.0.self_attn.q_proj.bias"] = torch::zeros({32});
  EXPECT_ERROR_HAS(from_hf_tensors(extra, cfg, "ckpt"),
                   "unexpected tensor model.layers.0.self_attn.q_proj.bias");
  TensorMap shaped = hf;
  shaped["model.embed_tokens.weight"] = torch::zeros({98, 32});
  EXPECT_ERROR_HAS(from_hf_tensors(shaped, cfg, "ckpt"),
                   "tensor model.embed_tokens.weight has shape [98, 32]", "[97, 32]");
}

TEST(HfIoTest, ImportNeedsATokenizerItCanEncodeWith) {
  TempDir dir;
  core::write_file_atomic(dir / "tokenizer.json", "{}");
  EXPECT_ERROR_HAS(hf_tokenizer_file(dir.path()), "tokenizer.json", "not a tokenizer.json");
  core::write_file_atomic(dir / "tokenizer.json",
                          R"({"model": {"type": "WordPiece", "vocab": {}}})");
  EXPECT_ERROR_HAS(hf_tokenizer_file(dir.path()), "model.type: WordPiece is not supported");
  TempDir none;
  EXPECT_ERROR_HAS(hf_tokenizer_file(none.path()), "no tokenizer.model", "or tokenizer.json");
}

TEST(HfIoTest, ExportRefusalsNameWhatTheFormatCannotCompute) {
  ModelConfig dense = testing::small_config();  // parallel + LayerNorm: Cohere's block
  EXPECT_EQ(hf_format_for(dense), HfFormat::kCohere);
  EXPECT_NE(hf_export_refusal(dense, HfFormat::kLlama).find("sequential blocks with RMSNorm"),
            std::string::npos);
  ModelConfig moe = dense;
  moe.block = BlockType::kSequential;
  moe.norm = Norm::kRmsNorm;
  moe.ffn_experts = 4;
  moe.ffn_top_k = 2;
  EXPECT_NE(hf_export_refusal(moe, HfFormat::kMixtral).find("without renormalising"),
            std::string::npos);
  moe.ffn_renormalize = true;
  EXPECT_EQ(hf_export_refusal(moe, HfFormat::kMixtral), "");
  moe.moe_every = 2;
  EXPECT_NE(hf_export_refusal(moe, HfFormat::kMixtral).find("every 2"), std::string::npos);
  ModelConfig bam = dense;
  bam.attn_experts = 2;
  EXPECT_FALSE(hf_format_for(bam).has_value());
  EXPECT_EQ(hf_export_refusal(bam, HfFormat::kNative), "");
}

}  // namespace
}  // namespace upcycle::stages
