// JSONL corpora tokenized in one streaming pass into Megatron datasets: plain, gzip and zstd files
// of the same text give byte-identical datasets whose documents are the tokenizer's encoding plus
// an end-of-sequence token; files tokenize alike on several threads; a bad line is named by
// path:line and a truncated zstd stream is refused. The text is Debian's GPL-3, a document per
// paragraph.
#include "stages/data/jsonl_tokenize.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/data/megatron_index.h"
#include "stages/data/token_shard.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

std::vector<std::string> paragraphs() {
  const std::string text = core::read_file("/usr/share/common-licenses/GPL-3");
  std::vector<std::string> out;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find("\n\n", at);
    if (end == std::string::npos) end = text.size();
    if (end > at) out.push_back(text.substr(at, end - at));
    at = end + 2;
  }
  return out;
}

std::vector<int64_t> document(const MegatronIndex& index, int64_t d) {
  TokenShard bin(index.prefix() + ".bin", ShardCheck::kSize, index.dtype());
  std::vector<int64_t> out(index.doc_start(d + 1) - index.doc_start(d));
  bin.copy_to(index.doc_start(d), int64_t(out.size()), out.data());
  return out;
}

class JsonlTokenizeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    docs_ = paragraphs();
    std::string sample;
    for (const auto& d : docs_) sample += d + "\n";
    core::write_file_atomic(dir_ / "sample.txt", sample);
    train_tokenizer(dir_ / "sample.txt", dir_ / "tok", {400, "bpe", 1, 0});
    std::string jsonl;
    for (size_t i = 0; i < docs_.size(); ++i) {
      jsonl += nlohmann::json({{"id", i}, {"text", docs_[i]}}).dump() + "\n";
      if (i == 3) jsonl += "\n";  // a blank line is skipped
    }
    core::write_file_atomic(dir_ / "gpl.jsonl", jsonl);
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"/usr/bin/gzip", "-k", "-f", dir_ / "gpl.jsonl"},
             {"/usr/bin/zstd", "-q", "-f", dir_ / "gpl.jsonl", "-o", dir_ / "gpl.jsonl.zst"}}) {
      auto r = testing::run_binary(argv);
      ASSERT_EQ(r.exit_code, 0) << argv[0] << ": " << r.output;
    }
  }
  testing::TempDir dir_;
  std::vector<std::string> docs_;
};

TEST_F(JsonlTokenizeTest, PlainGzipAndZstdGiveTheSameDatasetOfEncodedDocuments) {
  const Tokenizer tok(dir_ / "tok.model");
  for (const char* ext : {"jsonl", "jsonl.gz", "jsonl.zst"}) {
    const JsonlTokenized r =
        tokenize_jsonl(dir_ / ("gpl." + std::string(ext)), "text", tok, dir_ / ext);
    EXPECT_EQ(r.documents, int64_t(docs_.size())) << ext;
  }
  for (const char* ext : {"jsonl.gz", "jsonl.zst"}) {
    EXPECT_EQ(core::read_file(dir_ / (std::string(ext) + ".bin")),
              core::read_file(dir_ / "jsonl.bin"));
    EXPECT_EQ(core::read_file(dir_ / (std::string(ext) + ".idx")),
              core::read_file(dir_ / "jsonl.idx"));
  }
  const MegatronIndex index(dir_ / "jsonl");
  ASSERT_EQ(index.documents(), int64_t(docs_.size()));
  EXPECT_EQ(index.dtype(), "uint16");
  for (int64_t d : {int64_t(0), int64_t(7), index.documents() - 1}) {
    std::vector<int64_t> want;
    for (uint32_t id : tok.encode(docs_[d])) want.push_back(id);
    want.push_back(tok.eos_id());
    EXPECT_EQ(document(index, d), want) << "document " << d;
  }
}

TEST_F(JsonlTokenizeTest, FilesTokenizeAlikeOnSeveralThreads) {
  const Tokenizer tok(dir_ / "tok.model");
  std::vector<std::string> paths, serial, parallel;
  for (int i = 0; i < 3; ++i) {
    paths.push_back(dir_ / "gpl.jsonl.zst");
    serial.push_back(dir_ / ("s" + std::to_string(i)));
    parallel.push_back(dir_ / ("p" + std::to_string(i)));
  }
  tokenize_jsonl_files(paths, serial, "text", tok, 1);
  const auto r = tokenize_jsonl_files(paths, parallel, "text", tok, 3);
  ASSERT_EQ(r.size(), 3u);
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(core::read_file(parallel[i] + ".bin"), core::read_file(serial[i] + ".bin"));
}

TEST_F(JsonlTokenizeTest, ABadLineOrATruncatedStreamIsNamed) {
  const Tokenizer tok(dir_ / "tok.model");
  core::write_file_atomic(dir_ / "bad.jsonl", "{\"text\": \"a\"}\n\n{\"body\": \"b\"}\n");
  try {
    tokenize_jsonl(dir_ / "bad.jsonl", "text", tok, dir_ / "bad");
    ADD_FAILURE() << "expected an error";
  } catch (const StageError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:3: no string field 'text'"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(core::file_exists(dir_ / "bad.bin")) << "a failed file leaves no dataset";
  const std::string zst = core::read_file(dir_ / "gpl.jsonl.zst");
  core::write_file_atomic(dir_ / "cut.jsonl.zst", zst.substr(0, zst.size() / 2));
  EXPECT_THROW(tokenize_jsonl(dir_ / "cut.jsonl.zst", "text", tok, dir_ / "cut"), StageError);
}

}  // namespace
}  // namespace upcycle::stages
