#include "stages/io/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tests/support/model_configs.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

ModelConfig small() { return testing::small_config(/*vocab=*/50, /*layers=*/1); }

TEST(CheckpointTest, SaveThenLoadGivesIdenticalParameters) {
  testing::TempDir dir;
  torch::manual_seed(0);
  TransformerLm m(small());
  CheckpointMeta meta;
  meta.step = 7;
  meta.tokens = 1234;
  save_checkpoint(dir / "ck", m, meta);
  CheckpointMeta back;
  TransformerLm loaded = load_model(dir / "ck", &back);
  EXPECT_EQ(back.step, 7);
  EXPECT_EQ(back.tokens, 1234);
  EXPECT_EQ(to_json(back.model), to_json(small()));
  auto a = state_of(m), b = state_of(loaded);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
}

TEST(CheckpointTest, SafetensorsKeepsDtypesAndShapes) {
  testing::TempDir dir;
  TensorMap t = {{"f", torch::randn({2, 3})},
                 {"h", torch::randn({4}).to(torch::kBFloat16)},
                 {"i", torch::arange(5)}};
  core::write_file_atomic(dir / "x.safetensors", encode_safetensors(t, {{"k", "v"}}));
  std::map<std::string, std::string> meta;
  auto back = read_safetensors(dir / "x.safetensors", &meta);
  EXPECT_EQ(meta.at("k"), "v");
  for (const auto& [k, v] : t) {
    EXPECT_EQ(back.at(k).scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(back.at(k), v)) << k;
  }
}

TEST(CheckpointTest, CorruptWeightsAreRejectedWithPathAndReason) {
  testing::TempDir dir;
  TransformerLm m(small());
  save_checkpoint(dir / "ck", m, CheckpointMeta{});
  std::string weights = dir / "ck/model.safetensors";
  {
    std::fstream f(weights, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-4, std::ios::end);
    f.write("\x01\x02\x03\x04", 4);
  }
  try {
    load_model(dir / "ck");
    FAIL();
  } catch (const StageError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(weights), std::string::npos) << msg;
    EXPECT_NE(msg.find("sha256"), std::string::npos) << msg;
  }
}

TEST(CheckpointTest, DirectoryWithoutConfigIsNotACheckpoint) {
  testing::TempDir dir;
  core::make_dirs(dir / "half");
  core::write_file_atomic(dir / "half/model.safetensors", "partial");
  EXPECT_THROW(load_model(dir / "half"), StageError);
}

TEST(CheckpointTest, TruncatedSafetensorsHeaderIsAStageError) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "t.safetensors",
                          std::string("\xff\xff\x00\x00\x00\x00\x00\x00{", 9));
  EXPECT_THROW(read_safetensors(dir / "t.safetensors"), StageError);
}

}  // namespace
}  // namespace upcycle::stages
