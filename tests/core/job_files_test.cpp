#include "core/job_files.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tests/support/temp_dir.h"

namespace upcycle::core {
namespace {

TEST(JobFilesTest, ResultRoundTrips) {
  testing::TempDir dir;
  JobResult r;
  r.key = "abc";
  r.outputs = {{"checkpoint", "/x/checkpoint"}};
  r.evals = {{"seed", "ppl/code", "ppl", 12.5, 0.25, 4096, "none", std::nullopt},
             {"seed", "arc", "acc", 0.5, std::nullopt, 10, "none", 0}};
  r.artifacts = {{"/x/checkpoint", "checkpoint", "00ff", 123}};
  r.wall_s = 1.5;
  r.host = "h";
  r.device = "cpu";
  r.torch_version = "2.0";
  write_job_result(dir.path(), r);
  auto back = read_job_result(dir.path());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(to_json(*back), to_json(r));
  EXPECT_FALSE(back->evals[1].stderr_value.has_value());
}

TEST(JobFilesTest, MissingResultIsNulloptAndCorruptResultThrows) {
  testing::TempDir dir;
  EXPECT_FALSE(read_job_result(dir.path()).has_value());
  write_file_atomic(dir / kResultFile, "{\"format_version\": 1, \"status\": ");
  EXPECT_THROW(read_job_result(dir.path()), Error);
  write_file_atomic(dir / kResultFile, "{\"format_version\": 99}");
  EXPECT_THROW(read_job_result(dir.path()), Error);
}

// A result edited after the job wrote it is refused, naming the file.
TEST(JobFilesTest, AnEditedResultDoesNotMatchItsDigest) {
  testing::TempDir dir;
  JobResult r;
  r.key = "k";
  r.evals = {{"seed", "ppl/code", "ppl", 12.5, 0.25, 4096, "none", std::nullopt}};
  write_job_result(dir.path(), r);
  std::string text = read_file(dir / kResultFile);
  ASSERT_NE(text.find("\"digest\""), std::string::npos);
  const size_t at = text.find("12.5");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 4, "10.5");  // a better perplexity, by hand
  write_file_atomic(dir / kResultFile, text);
  try {
    read_job_result(dir.path());
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("does not match its digest"), std::string::npos)
        << e.what();
  }
  nlohmann::json j = nlohmann::json::parse(text);
  j.erase("digest");
  write_file_atomic(dir / kResultFile, j.dump());
  EXPECT_THROW(read_job_result(dir.path()), Error) << "a version 2 result without a digest";
}

// JSON cannot hold NaN: a diverged eval fails when its result is written, not when it is read back.
TEST(JobFilesTest, ANanValueFailsTheWriteWithItsName) {
  testing::TempDir dir;
  JobResult r;
  r.evals = {{"bam", "ppl/code", "ppl", std::nan(""), 0.1, 10, "none", std::nullopt}};
  try {
    write_job_result(dir.path(), r);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("ppl/code ppl of bam is NaN"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(read_job_result(dir.path()).has_value());
}

TEST(JobFilesTest, APositiveOutputIsTheWholeStringAFiniteNumberAboveZero) {
  JobResult r;
  r.outputs = {{"ok", "4237.5"}, {"exp", "1e3"},  {"zero", "0"},   {"neg", "-3"},
               {"nan", "nan"},   {"inf", "inf"},  {"tail", "12x"}, {"empty", ""},
               {"word", "fast"}, {"space", " 12"}};
  EXPECT_EQ(positive_output(r, "ok"), 4237.5);
  EXPECT_EQ(positive_output(r, "exp"), 1000.0);
  for (const char* bad :
       {"zero", "neg", "nan", "inf", "tail", "empty", "word", "space", "absent"}) {
    EXPECT_FALSE(positive_output(r, bad).has_value()) << bad;
  }
}

}  // namespace
}  // namespace upcycle::core
