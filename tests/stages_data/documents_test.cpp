#include "stages/data/documents.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

TEST(DocumentsTest, FortuneFilesSplitOnPercentLines) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "f", "A saying.\n%\nAnother\n  one.\n%\n\n%\n");
  auto docs = read_documents(dir / "f", DocSplit::kFortune);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "A saying.");
  EXPECT_EQ(docs[1].text, "Another\n  one.");
}

TEST(DocumentsTest, JsonlLinesAreDocumentsFromTheTextField) {
  testing::TempDir dir;
  core::write_file_atomic(
      dir / "a.jsonl",
      "{\"text\": \"first doc\", \"id\": 1}\n\n{\"id\": 2, \"text\": \"second\\nline\"}\n");
  auto docs = read_documents(dir / "a.jsonl", DocSplit::kJsonl);
  ASSERT_EQ(docs.size(), 2u);
  EXPECT_EQ(docs[0].text, "first doc");
  EXPECT_EQ(docs[1].text, "second\nline");
  EXPECT_EQ(docs[1].origin, dir / "a.jsonl");
  core::write_file_atomic(dir / "b.jsonl", "{\"body\": \"x\"}\n");
  EXPECT_EQ(read_documents(dir / "b.jsonl", DocSplit::kJsonl, "body").at(0).text, "x");
  try {
    read_documents(dir / "b.jsonl", DocSplit::kJsonl);
    ADD_FAILURE() << "missing field accepted";
  } catch (const StageError& e) {
    EXPECT_NE(std::string(e.what()).find("b.jsonl:1: no string field 'text'"), std::string::npos)
        << e.what();
  }
  core::write_file_atomic(dir / "c.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"torn\n");
  try {
    read_documents(dir / "c.jsonl", DocSplit::kJsonl);
    ADD_FAILURE() << "malformed line accepted";
  } catch (const StageError& e) {
    EXPECT_NE(std::string(e.what()).find("c.jsonl:2: not a JSON object"), std::string::npos)
        << e.what();
  }
}

TEST(DocumentsTest, BinaryAndInvalidUtf8FilesAreSkipped) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "bin", std::string("ab\0cd", 5));
  core::write_file_atomic(dir / "latin1", "caf\xe9 au lait");
  core::write_file_atomic(dir / "utf8", "caf\xc3\xa9 au lait");
  EXPECT_TRUE(read_documents(dir / "bin", DocSplit::kWholeFile).empty());
  EXPECT_TRUE(read_documents(dir / "latin1", DocSplit::kWholeFile).empty());
  EXPECT_EQ(read_documents(dir / "utf8", DocSplit::kWholeFile).size(), 1u);
}

TEST(DocumentsTest, PatternsExpandRecursivelyAndSorted) {
  testing::TempDir dir;
  core::make_dirs(dir / "a/b");
  core::write_file_atomic(dir / "a/b/x.h", "x");
  core::write_file_atomic(dir / "a/y.h", "y");
  core::write_file_atomic(dir / "a/z.c", "z");
  EXPECT_EQ(expand_pattern(dir / "a/**/*.h"),
            (std::vector<std::string>{dir / "a/b/x.h", dir / "a/y.h"}));
  EXPECT_EQ(expand_pattern(dir / "a/*.h"), (std::vector<std::string>{dir / "a/y.h"}));
  EXPECT_TRUE(expand_pattern(dir / "nope/*.h").empty());
}

TEST(DocumentsTest, DpkgIndexFindsTheOwnerOfAnInstalledFile) {
  DpkgIndex index;
  auto [pkg, version] = index.owner("/usr/share/common-licenses/GPL-3");
  EXPECT_EQ(pkg, "base-files");
  EXPECT_FALSE(version.empty());
  EXPECT_EQ(index.owner("/no/such/file").first, "");
}

}  // namespace
}  // namespace upcycle::stages
