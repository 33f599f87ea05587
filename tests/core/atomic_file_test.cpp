#include "core/atomic_file.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "tests/support/temp_dir.h"

namespace upcycle::core {
namespace {

TEST(AtomicFileTest, ReplacesContentAndLeavesNoTempFile) {
  testing::TempDir dir;
  std::string path = dir / "result.json";
  write_file_atomic(path, "first");
  write_file_atomic(path, "second");
  EXPECT_EQ(read_file(path), "second");
  int files = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST(AtomicFileTest, UnwritableDirectoryThrowsWithPath) {
  try {
    write_file_atomic("/nonexistent-dir/x.json", "x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent-dir/x.json"), std::string::npos) << e.what();
  }
}

TEST(AtomicFileTest, AppendLineAppends) {
  testing::TempDir dir;
  std::string path = dir / "m.jsonl";
  append_line(path, "a");
  append_line(path, "b");
  EXPECT_EQ(read_file(path), "a\nb\n");
}

}  // namespace
}  // namespace upcycle::core
