#include "stages/data/token_shard.h"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cstdlib>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

TEST(TokenShardTest, RoundTripsNarrowAndWide) {
  testing::TempDir dir;
  std::vector<uint32_t> tokens = {0, 1, 511, 65535, 7};
  write_token_shard(dir / "a.bin", tokens, 65536);
  TokenShard a(dir / "a.bin");
  ASSERT_EQ(a.size(), 5);
  for (int64_t i = 0; i < a.size(); ++i) EXPECT_EQ(a.at(i), tokens[i]);
  EXPECT_EQ(std::filesystem::file_size(dir / "a.bin"), 10u);  // uint16
  tokens.push_back(200000);
  write_token_shard(dir / "b.bin", tokens, 256000);
  TokenShard b(dir / "b.bin");
  EXPECT_EQ(b.at(5), 200000u);
  std::vector<int64_t> out(3);
  b.copy_to(2, 3, out.data());
  EXPECT_EQ(out, (std::vector<int64_t>{511, 65535, 7}));
  b.copy_to(2, 3, out.data(), 65536);  // within the vocabulary
  try {
    b.copy_to(2, 3, out.data(), 65535);  // a model with a smaller vocabulary than the data's
    FAIL();
  } catch (const StageError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "b.bin: token 65535 at position 3 is outside the model's vocabulary (65535)"),
              std::string::npos)
        << e.what();
  }
}

TEST(TokenShardTest, TruncatedShardIsRejectedWithPathAndReason) {
  testing::TempDir dir;
  std::string path = dir / "t.bin";
  write_token_shard(path, std::vector<uint32_t>(100, 3), 1000);
  std::filesystem::resize_file(path, 100);  // 50 tokens left
  try {
    TokenShard s(path);
    FAIL();
  } catch (const StageError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }
}

TEST(TokenShardTest, CorruptShardFailsItsHash) {
  testing::TempDir dir;
  std::string path = dir / "c.bin";
  write_token_shard(path, std::vector<uint32_t>(100, 3), 1000);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(10);
    f.put('\x7f');
  }
  EXPECT_THROW(TokenShard s(path), StageError);  // its mtime changed: hashed in full
  EXPECT_NO_THROW(TokenShard s(path, ShardCheck::kSize));
}

// A shard of 8 MiB: the sampled digest reads 64 blocks of 64 KiB. With the mtime restored after
// an edit (as a careless copy can), a change inside a sampled block is caught at start-up, one
// between blocks only by the full check (--verify-data full), which always catches it.
TEST(TokenShardTest, SampledCheckAtStartAndFullOnRequest) {
  testing::TempDir dir;
  const std::string path = dir / "big.bin";
  write_token_shard(path, std::vector<uint32_t>(4 << 20, 7), 1000);  // uint16: 8 MiB
  const int64_t stamp = mtime_ns(path);
  auto poke = [&](int64_t offset) {
    {
      std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
      f.seekp(offset);
      f.put('\x01');
    }
    const struct timespec t[2] = {{stamp / 1000000000, stamp % 1000000000},
                                  {stamp / 1000000000, stamp % 1000000000}};
    ASSERT_EQ(::utimensat(AT_FDCWD, path.c_str(), t, 0), 0);
  };
  EXPECT_NO_THROW(TokenShard s(path));
  poke(100 << 10);  // between the first block (0..64 KiB) and the second (at ~130 KiB)
  EXPECT_NO_THROW(TokenShard s(path));  // sampled: not read
  EXPECT_THROW(TokenShard s(path, ShardCheck::kFull), StageError);
  ::setenv("UPCYCLE_VERIFY_DATA", "full", 1);
  EXPECT_THROW(TokenShard s(path), StageError);
  ::unsetenv("UPCYCLE_VERIFY_DATA");
  poke(10);  // inside the first block
  try {
    TokenShard s(path);
    ADD_FAILURE() << "a change in a sampled block was not caught";
  } catch (const StageError& e) {
    EXPECT_NE(std::string(e.what()).find("sampled digest"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace upcycle::stages
