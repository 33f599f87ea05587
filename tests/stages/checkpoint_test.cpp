#include "stages/io/checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/sha256.h"
#include "stages/io/checkpoint_shards.h"
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

// The streamed writer lays out a file byte for byte as the in-memory encoder does (the format's
// own reference being read_safetensors and, in the interop tests, Python's safetensors).
TEST(CheckpointTest, StreamedSafetensorsIsTheEncodedFileAndReadsRanges) {
  testing::TempDir dir;
  TensorMap t = {{"a", torch::randn({3, 5})}, {"b", torch::arange(7).to(torch::kInt32)}};
  const WrittenFile w =
      write_safetensors_streamed(dir / "s.safetensors", {t.begin(), t.end()}, {{"k", "v"}});
  const std::string bytes = core::read_file(dir / "s.safetensors");
  EXPECT_EQ(bytes, encode_safetensors(t, {{"k", "v"}}));
  EXPECT_EQ(w.sha256, core::sha256_hex(bytes));
  EXPECT_EQ(w.bytes, bytes.size());
  const SafetensorsFile f(dir / "s.safetensors");
  EXPECT_TRUE(torch::equal(f.read_flat("a", 4, 6), t.at("a").reshape({-1}).narrow(0, 4, 6)));
  EXPECT_THROW(f.read_flat("a", 10, 6), StageError);  // past the tensor's 15 elements
}

TEST(CheckpointTest, SplitEvenlyCoversEveryItemInOrder) {
  EXPECT_EQ(split_evenly({5, 5, 5, 5}, 2), (std::vector<size_t>{0, 2, 4}));
  EXPECT_EQ(split_evenly({100, 1, 1, 1}, 2), (std::vector<size_t>{0, 1, 4}));
  EXPECT_EQ(split_evenly({3}, 3), (std::vector<size_t>{0, 0, 1, 1}));  // runs may be empty
  EXPECT_EQ(split_evenly({}, 2), (std::vector<size_t>{0, 0, 0}));
}

// Three ranks' weight shards (each its part, written in turn here) load as the model, and AdamW
// pieces cut anywhere read back as any range; a range the pieces do not cover is an error.
TEST(CheckpointTest, ShardsOfSeveralRanksLoadAsOneCheckpoint) {
  testing::TempDir dir;
  torch::manual_seed(0);
  TransformerLm m(small());
  const std::string ck = dir / "ck", tmp = begin_checkpoint(ck);
  CheckpointMeta meta;
  meta.model = m->config;
  meta.step = 3;
  const at::Tensor m_N = torch::randn({10}), v_N = torch::rand({10});
  for (int r = 0; r < 3; ++r) meta.weights.push_back(write_weight_shard(tmp, m, r, 3));
  meta.optimizer.push_back(write_optimizer_shard(
      tmp, {{"p", 0, m_N.narrow(0, 0, 4), v_N.narrow(0, 0, 4), {}, 3}}, 0, 2));
  meta.optimizer.push_back(write_optimizer_shard(
      tmp, {{"p", 4, m_N.narrow(0, 4, 6), v_N.narrow(0, 4, 6), {}, 3}}, 1, 2));
  commit_checkpoint(ck, tmp, meta);
  EXPECT_FALSE(std::filesystem::exists(tmp));
  EXPECT_TRUE(std::filesystem::exists(ck + "/model-00003-of-00003.safetensors"));

  TransformerLm loaded = load_model(ck);
  auto a = state_of(m), b = state_of(loaded);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) EXPECT_TRUE(torch::equal(v, b.at(k))) << k;

  const CheckpointMeta back = read_checkpoint_meta(ck);
  OptimizerStateReader reader(ck, back);
  EXPECT_TRUE(torch::equal(reader.read("p", "exp_avg", 2, 5), m_N.narrow(0, 2, 5)));
  EXPECT_TRUE(torch::equal(reader.read("p", "exp_avg_sq", 0, 10), v_N));
  EXPECT_EQ(reader.step("p"), 3);
  EXPECT_FALSE(reader.read("q", "exp_avg", 0, 1).defined());    // no state: a fresh parameter
  EXPECT_THROW(reader.read("p", "exp_avg", 8, 4), StageError);  // past the pieces
}

// Checkpoints of format 1 (one model.safetensors, `weights_sha256`) in users' stores still load.
TEST(CheckpointTest, FormatOneCheckpointsStillLoad) {
  testing::TempDir dir;
  torch::manual_seed(1);
  TransformerLm m(small());
  core::make_dirs(dir / "v1");
  const std::string weights = encode_safetensors(state_of(m), {{"format", "pt"}});
  core::write_file_atomic(dir / "v1/model.safetensors", weights);
  const nlohmann::json cfg = {{"format_version", 1},
                              {"model", to_json(m->config)},
                              {"step", 5},
                              {"tokens", 640},
                              {"extra", nlohmann::json::object()},
                              {"weights_sha256", core::sha256_hex(weights)}};
  core::write_file_atomic(dir / "v1/config.json", cfg.dump());
  CheckpointMeta meta;
  TransformerLm loaded = load_model(dir / "v1", &meta);
  auto b = state_of(loaded);
  EXPECT_EQ(meta.step, 5);
  EXPECT_EQ(weights_digest(meta), core::sha256_hex(weights));
  for (const auto& [k, v] : state_of(m)) EXPECT_TRUE(torch::equal(v, b.at(k))) << k;
}

}  // namespace
}  // namespace upcycle::stages
