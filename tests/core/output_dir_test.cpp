// core/output_dir.h (every command that writes a directory of the user's) and core/atomic_file.h's
// regular-file reader: what is refused, what is replaced, and that nothing stray is left.
#include "core/output_dir.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "tests/support/temp_dir.h"

namespace upcycle::core {
namespace {

namespace fs = std::filesystem;

size_t entries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir)) ++n;
  return n;
}

void write_whole(const std::string& target, const OutputRules& rules, const std::string& content) {
  OutputDir out(target, rules);
  write_file_atomic(out.path() + "/data", content);
  out.commit();
}

TEST(OutputDirTest, NewAndEmptyTargetsAreWrittenWithTheMarker) {
  testing::TempDir dir;
  write_whole(dir / "new", {}, "1");
  EXPECT_EQ(read_file(dir / "new/data"), "1");
  EXPECT_TRUE(fs::exists(dir / ("new/" + std::string(kOutputMarker))));
  make_dirs(dir / "empty");
  write_whole(dir / "empty/", {}, "2");
  EXPECT_EQ(read_file(dir / "empty/data"), "2");
  EXPECT_EQ(entries(dir.path()), 2u) << "no temp sibling left";
}

TEST(OutputDirTest, UserDataIsNeverReplaced) {
  testing::TempDir dir;
  make_dirs(dir / "mine");
  write_file_atomic(dir / "mine/thesis.tex", "years of work");
  write_file_atomic(dir / "file", "a file");
  for (const std::string& target :
       {dir / "mine", dir / "file", dir.path(), std::string("/"), dir / "mine/.."}) {
    EXPECT_THROW(write_whole(target, {true, {}}, "x"), Error) << target;
  }
  EXPECT_EQ(read_file(dir / "mine/thesis.tex"), "years of work");
  EXPECT_EQ(read_file(dir / "file"), "a file");
  fs::create_directory_symlink(dir / "mine", dir / "link");
  EXPECT_NE(output_dir_refusal(dir / "link", {true, {}}).find("symbolic link"), std::string::npos);
  EXPECT_NE(output_dir_refusal(dir / "a\nb", {}).find("control character"), std::string::npos);
  EXPECT_NE(output_dir_refusal("", {}).find("empty"), std::string::npos);
}

TEST(OutputDirTest, ProtectedPathsAndTheirAncestorsAreNeverTargets) {
  testing::TempDir dir;
  write_whole(dir / "runs", {}, "mine");  // marked: replaceable with force, but for what it holds
  write_file_atomic(dir / "runs/store.sqlite", "");
  const OutputRules rules{true, {{"the store", dir / "runs/store.sqlite"}}};
  EXPECT_NE(output_dir_refusal(dir / "runs", rules).find("holds the store"), std::string::npos);
  EXPECT_NE(output_dir_refusal(dir / "runs/./store.sqlite", rules).find("is the store"),
            std::string::npos);
  EXPECT_NE(output_dir_refusal(dir.path(), rules).find("holds the store"), std::string::npos);
  EXPECT_EQ(output_dir_refusal(dir / "runs/export", rules), "") << "beside the store is fine";
}

TEST(OutputDirTest, ItsOwnOutputIsReplacedOnlyWithForce) {
  testing::TempDir dir;
  write_whole(dir / "out", {}, "first");
  EXPECT_THROW(write_whole(dir / "out", {}, "second"), Error);
  EXPECT_EQ(read_file(dir / "out/data"), "first");
  write_whole(dir / "out", {true, {}}, "second");
  EXPECT_EQ(read_file(dir / "out/data"), "second");
  EXPECT_EQ(entries(dir.path()), 1u) << "neither the temp nor the old copy is left";
}

TEST(OutputDirTest, AFailureBeforeCommitLeavesTheTargetAndNoTemp) {
  testing::TempDir dir;
  write_whole(dir / "out", {}, "kept");
  try {
    OutputDir out(dir / "out", {true, {}});
    write_file_atomic(out.path() + "/data", "half");
    throw Error("the export failed");
  } catch (const Error&) {
  }
  EXPECT_EQ(read_file(dir / "out/data"), "kept");
  EXPECT_EQ(entries(dir.path()), 1u);
}

TEST(OutputDirTest, StaleTempsOfDeadProcessesAreSwept) {
  testing::TempDir dir;
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  int status = 0;
  ::waitpid(child, &status, 0);  // a pid that is surely gone
  make_dirs(dir / (".out.tmp." + std::to_string(child)));
  write_file_atomic(dir / ("checkpoint.tmp." + std::to_string(child)), "partial");
  make_dirs(dir / ".out.tmp.1");  // init lives: not stale
  make_dirs(dir / ".out.tmp.notapid");
  EXPECT_EQ(sweep_stale_temps(dir / "out"), 1);
  EXPECT_EQ(sweep_stale_temps(dir / "checkpoint"), 1);
  EXPECT_TRUE(fs::exists(dir / ".out.tmp.1"));
  EXPECT_TRUE(fs::exists(dir / ".out.tmp.notapid"));
}

TEST(ReadFileTest, OnlyRegularFilesUpToTheCap) {
  testing::TempDir dir;
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  for (const std::string& path : {dir / "fifo", std::string("/dev/zero"), dir.path()}) {
    try {
      read_file(path);  // must not block on the FIFO nor read /dev/zero forever
      ADD_FAILURE() << path;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("not a regular file"), std::string::npos) << e.what();
    }
  }
  write_file_atomic(dir / "big", std::string(1000, 'x'));
  EXPECT_EQ(read_file(dir / "big", 1000).size(), 1000u);
  EXPECT_THROW(read_file(dir / "big", 999), Error);
  EXPECT_THROW(read_json_file(dir / "fifo"), Error);
}

TEST(ReadFileTest, JsonErrorsSayFileLineAndColumnInOurWords) {
  try {
    parse_json("{\n  \"a\": 1,\n  \"b\": tru\n}", "config.json");
    FAIL();
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind("config.json:3:", 0), 0u) << m;
    EXPECT_EQ(m.find("json.exception"), std::string::npos) << m;
    EXPECT_NE(m.find("invalid JSON"), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace upcycle::core
