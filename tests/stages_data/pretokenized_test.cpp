// Pre-tokenized nanoGPT shards: linked with a sidecar that TokenShard then verifies, and every bad
// shard (missing, truncated, empty, out of vocabulary) refused with its path and the reason.
#include "stages/data/pretokenized.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "stages/data/token_shard.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

// Writes raw uint16 tokens with no sidecar, as nanoGPT's prepare.py does.
void write_raw_u16(const std::string& path, const std::vector<uint16_t>& tokens) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(tokens.data()),
            static_cast<std::streamsize>(tokens.size() * 2));
}

std::string error_of(const std::string& source, const std::string& dtype, int64_t vocab,
                     const std::string& dest) {
  try {
    link_pretokenized_shard(source, dtype, vocab, dest);
  } catch (const StageError& e) {
    return e.what();
  }
  return "";
}

TEST(PretokenizedTest, LinksAShardThatReadsBackAndDetectsALaterChange) {
  testing::TempDir dir;
  write_raw_u16(dir / "train.bin", {5, 1, 65000, 3});
  LinkedShard l = link_pretokenized_shard(dir / "train.bin", "uint16", 65536, dir / "linked.bin");
  EXPECT_EQ(l.tokens, 4);
  EXPECT_EQ(l.bytes, 8);
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "linked.bin"));
  {
    TokenShard s(dir / "linked.bin");  // dtype from the sidecar, sha256 verified
    ASSERT_EQ(s.size(), 4);
    EXPECT_EQ(s.at(2), 65000u);
  }
  write_raw_u16(dir / "train.bin", {5, 1, 7, 3});  // the user's file changes after prepare
  EXPECT_THROW(TokenShard s(dir / "linked.bin"), StageError);
}

TEST(PretokenizedTest, BadShardsNameThePathAndTheReason) {
  testing::TempDir dir;
  const std::string dest = dir / "linked.bin";
  std::string msg = error_of(dir / "missing.bin", "uint16", 100, dest);
  EXPECT_NE(msg.find("missing.bin: pre-tokenized shard not found"), std::string::npos) << msg;

  write_raw_u16(dir / "odd.bin", {1, 2, 3});
  std::filesystem::resize_file(dir / "odd.bin", 5);
  msg = error_of(dir / "odd.bin", "uint16", 100, dest);
  EXPECT_NE(msg.find("odd.bin: size 5 is not a multiple of 2 bytes"), std::string::npos) << msg;
  msg = error_of(dir / "odd.bin", "uint32", 100, dest);  // 5 bytes is not whole uint32s either
  EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;

  write_raw_u16(dir / "empty.bin", {});
  msg = error_of(dir / "empty.bin", "uint16", 100, dest);
  EXPECT_NE(msg.find("empty.bin: pre-tokenized shard is empty"), std::string::npos) << msg;

  write_raw_u16(dir / "big.bin", {1, 2, 99, 100});
  msg = error_of(dir / "big.bin", "uint16", 100, dest);
  EXPECT_NE(msg.find("big.bin: token 100 at position 3 is outside the vocabulary (100)"),
            std::string::npos)
      << msg;
  EXPECT_FALSE(std::filesystem::exists(dest)) << "a refused shard leaves no link";
}

TEST(PretokenizedTest, NanoGptLayoutDefaultsAndTheTestSplitFallsBackToVal) {
  testing::TempDir dir;
  PretokenizedShards s = resolve_shard_paths({dir.path(), "", "", "", "uint16"});
  EXPECT_EQ(s.train, dir / "train.bin");
  EXPECT_EQ(s.valid, dir / "val.bin");
  EXPECT_EQ(s.test, dir / "val.bin");
  write_raw_u16(dir / "test.bin", {1});
  EXPECT_EQ(resolve_shard_paths({dir.path(), "", "", "", "uint16"}).test, dir / "test.bin");
  EXPECT_EQ(resolve_shard_paths({"", "/a", "/b", "/c", "uint32"}).test, "/c");
  EXPECT_THROW(resolve_shard_paths({"", "/a", "", "/c", "uint32"}), StageError);
}

}  // namespace
}  // namespace upcycle::stages
