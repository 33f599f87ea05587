// Pre-tokenized corpora: nanoGPT .bin files and Megatron indexed datasets planned into splits,
// checked, recorded in a parts list that DomainTokens reads back (noticing a later change), and
// every bad file (missing, truncated, empty, out of vocabulary, an implausible or contradicted
// dtype, a broken index) refused with its path and the reason.
#include "stages/data/pretokenized.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "stages/data/megatron_index.h"
#include "stages/data/token_shard.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

// Writes raw tokens with no sidecar, as nanoGPT's prepare.py does.
template <class T>
void write_raw(const std::string& path, const std::vector<T>& tokens) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(tokens.data()),
            static_cast<std::streamsize>(tokens.size() * sizeof(T)));
}

PretokenizedShards by_file(const std::string& train, const std::string& valid,
                           const std::string& test, const std::string& dtype) {
  PretokenizedShards s;
  s.train = {{train, 0}};
  s.valid = {{valid, 0}};
  s.test = {{test, 0}};
  s.dtype = dtype;
  return s;
}

std::string error_of(const PretokenizedShards& s, int64_t vocab) {
  try {
    check_shards(plan_shards(s), s.dtype, vocab);
  } catch (const StageError& e) {
    return e.what();
  }
  return "";
}

std::vector<int64_t> read_all(const DomainTokens& t) {
  std::vector<int64_t> out(t.size());
  t.copy_to(0, t.size(), out.data(), 0);
  return out;
}

void write_megatron(const std::string& prefix, const std::vector<std::vector<uint32_t>>& docs,
                    const std::string& dtype = "uint16") {
  MegatronWriter w(prefix, dtype);
  for (const auto& d : docs) w.add_document(d);
  w.finish();
}

TEST(PretokenizedTest, NanoGptFilesReadBackThroughTheirPartsListAndALaterChangeIsCaught) {
  testing::TempDir dir;
  write_raw<uint16_t>(dir / "train.bin", {5, 1, 65000, 3});
  write_raw<uint16_t>(dir / "val.bin", {7, 8});
  PretokenizedShards s;
  s.dir = dir.path();
  s.dtype = "uint16";
  const ShardPlan plan = plan_shards(s);
  EXPECT_EQ(plan.by_file[2][0].path, dir / "val.bin");  // no test.bin: val doubles as test
  auto splits = check_shards(plan, "uint16", 65536);
  ASSERT_EQ(splits[0].size(), 1u);
  EXPECT_EQ(splits[0][0].bin.tokens, 4);
  EXPECT_EQ(splits[0][0].bin.sha256.size(), 64u);
  write_parts(dir / "d.train.bin", splits[0], {});
  EXPECT_EQ(read_all(DomainTokens(dir / "d.train.bin")), (std::vector<int64_t>{5, 1, 65000, 3}));
  write_raw<uint16_t>(dir / "train.bin", {5, 1, 7, 3});  // the user's file changes after prepare
  EXPECT_THROW(DomainTokens t(dir / "d.train.bin"), StageError);
}

TEST(PretokenizedTest, BadFilesNameThePathAndTheReason) {
  testing::TempDir dir;
  const std::string ok = dir / "ok.bin";
  write_raw<uint16_t>(ok, {1, 2, 3, 4});
  std::string msg = error_of(by_file(dir / "missing.bin", ok, ok, "uint16"), 100);
  EXPECT_NE(msg.find("missing.bin: pre-tokenized file not found"), std::string::npos) << msg;

  write_raw<uint16_t>(dir / "odd.bin", {1, 2, 3});
  std::filesystem::resize_file(dir / "odd.bin", 5);
  msg = error_of(by_file(dir / "odd.bin", ok, ok, "uint16"), 100);
  EXPECT_NE(msg.find("odd.bin: size 5 is not a multiple of 2 bytes"), std::string::npos) << msg;

  write_raw<uint16_t>(dir / "empty.bin", {});
  msg = error_of(by_file(dir / "empty.bin", ok, ok, "uint16"), 100);
  EXPECT_NE(msg.find("empty.bin: pre-tokenized shard is empty"), std::string::npos) << msg;

  write_raw<uint16_t>(dir / "big.bin", {1, 2, 99, 100});
  msg = error_of(by_file(dir / "big.bin", ok, ok, "uint16"), 100);
  EXPECT_NE(msg.find("big.bin: token 100 at position 3 is outside the model's vocabulary (100)"),
            std::string::npos)
      << msg;
  msg = error_of(by_file(ok, ok, ok, ""), 100);
  EXPECT_NE(msg.find("ok.bin: a nanoGPT .bin has no header: give the domain's shards.dtype"),
            std::string::npos)
      << msg;
  msg = error_of(by_file(dir / "none/*.bin", ok, ok, "uint16"), 100);
  EXPECT_NE(msg.find("none/*.bin: matches no .bin or .idx file"), std::string::npos) << msg;
}

// int32 tokens declared uint16 read as the token, then 0: every other token is 0. The case from
// the field: shards written as int32 trained silently as uint16 and reported a wrong perplexity.
TEST(PretokenizedTest, AnImplausibleDeclaredDtypeIsRefusedWithTheNumbers) {
  testing::TempDir dir;
  std::vector<uint32_t> wide;
  for (uint32_t i = 0; i < 20000; ++i) wide.push_back(1 + (i * 7919) % 50000);
  write_raw(dir / "wide.bin", wide);
  std::string msg =
      error_of(by_file(dir / "wide.bin", dir / "wide.bin", dir / "wide.bin", "uint16"), 50304);
  EXPECT_NE(msg.find("wide.bin: the declared dtype uint16 is implausible: 100.0% of the tokens at "
                     "odd positions are 0"),
            std::string::npos)
      << msg;
  std::vector<uint16_t> narrow(wide.begin(), wide.end());
  write_raw(dir / "narrow.bin", narrow);
  msg = error_of(by_file(dir / "narrow.bin", dir / "narrow.bin", dir / "narrow.bin", "uint32"),
                 50304);
  EXPECT_NE(msg.find("narrow.bin: the declared dtype uint32 is implausible"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("16-bit tokens read as 32-bit"), std::string::npos) << msg;
  EXPECT_EQ(
      error_of(by_file(dir / "wide.bin", dir / "wide.bin", dir / "wide.bin", "uint32"), 50304), "");
}

TEST(PretokenizedTest, MegatronDatasetsSplitByDocumentWithTheirDtypeFromTheIndex) {
  testing::TempDir dir;
  std::vector<std::vector<uint32_t>> docs;
  for (uint32_t d = 0; d < 10; ++d) docs.push_back(std::vector<uint32_t>(d + 1, 100 + d));
  write_megatron(dir / "web_text_document", docs);
  PretokenizedShards s;
  s.files = {{dir / "web_text_document", 0}};
  s.split = "8,1,1";
  auto splits = check_shards(plan_shards(s), "", 200);
  ASSERT_EQ(splits[1].size(), 1u);
  EXPECT_EQ(splits[0][0].bin.dtype, "uint16");
  EXPECT_EQ(splits[0][0].doc_begin, 0);
  EXPECT_EQ(splits[0][0].doc_end, 8);
  EXPECT_EQ(splits[1][0].doc_begin, 8);
  EXPECT_EQ(splits[2][0].doc_begin, 9);
  write_parts(dir / "d.valid.bin", splits[1], {});
  EXPECT_EQ(read_all(DomainTokens(dir / "d.valid.bin")), std::vector<int64_t>(9, 108));
  // With boundary eod, the end-of-document token follows every document, windows read across.
  write_parts(dir / "d.test.bin", splits[0], {"eod", 7});
  DomainTokens t(dir / "d.test.bin");
  EXPECT_EQ(t.size(), 36 + 8);
  std::vector<int64_t> window(6);
  t.copy_to(1, 6, window.data(), 200);
  EXPECT_EQ(window, (std::vector<int64_t>{7, 101, 101, 7, 102, 102}));

  // The recipe's dtype must agree with the index; a truncated .bin is named.
  std::string msg = error_of(
      [&] {
        PretokenizedShards bad = s;
        bad.dtype = "int32";
        return bad;
      }(),
      200);
  EXPECT_NE(msg.find("web_text_document.idx: the index says the tokens are uint16, the recipe "
                     "says int32"),
            std::string::npos)
      << msg;
  std::filesystem::resize_file(dir / "web_text_document.bin", 20);
  msg = error_of(s, 200);
  EXPECT_NE(msg.find("web_text_document.bin: 20 bytes, its index"), std::string::npos) << msg;
  write_raw<uint8_t>(dir / "junk.idx", {1, 2, 3});
  write_raw<uint8_t>(dir / "junk.bin", {1, 2});
  PretokenizedShards junk;
  junk.files = {{dir / "junk.bin", 0}};
  msg = error_of(junk, 200);
  EXPECT_NE(msg.find("junk.idx: too short for a header"), std::string::npos) << msg;
}

TEST(PretokenizedTest, WeightsAreSharedByTokensWithinAnEntryAndNormalised) {
  testing::TempDir dir;
  write_megatron(dir / "a", {{1, 2, 3}, {4}});              // 4 tokens
  write_megatron(dir / "b", {{1, 2, 3, 4, 5, 6, 7, 8}});    // 8
  write_megatron(dir / "c", {{1, 2, 3, 4}, {5, 6, 7, 8}});  // 8
  PretokenizedShards s;
  s.train = {{dir / "a", 0.25}, {dir / "[bc].idx", 0.75}};  // a glob: b and c share 0.75
  s.valid = s.test = {{dir / "a", 0}};
  auto splits = check_shards(plan_shards(s), "", 100);
  ASSERT_EQ(splits[0].size(), 3u);
  EXPECT_DOUBLE_EQ(splits[0][0].weight, 0.25);
  EXPECT_DOUBLE_EQ(splits[0][1].weight, 0.375);
  EXPECT_DOUBLE_EQ(splits[0][2].weight, 0.375);
  s.train = {{dir / "a", 0}, {dir / "b", 0}};  // no weights: by tokens
  splits = check_shards(plan_shards(s), "", 100);
  EXPECT_NEAR(splits[0][0].weight, 1.0 / 3.0, 1e-12);
}

TEST(PretokenizedTest, DocumentSplitsAreParsedStrictly) {
  EXPECT_EQ(parse_document_split("969,30,1"), (std::array<int64_t, 3>{969, 30, 1}));
  for (const char* bad : {"969,30", "a,b,c", "0,1,1", "1,-1,1", "1,2,3,4", "99999999999,1,1"})
    EXPECT_THROW(parse_document_split(bad), StageError) << bad;
}

}  // namespace
}  // namespace upcycle::stages
