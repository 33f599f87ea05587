#include "core/job_files.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace upcycle::core
