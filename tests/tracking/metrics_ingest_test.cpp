#include "tracking/metrics_ingest.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "tests/support/temp_dir.h"

namespace upcycle::tracking {
namespace {

TEST(MetricsIngestTest, TornLastLineIsSkipped) {
  testing::TempDir dir;
  std::string path = dir / "metrics.jsonl";
  core::write_file_atomic(path,
                          "{\"step\":1,\"time\":1.0,\"values\":{\"loss\":2.5,\"lr\":null}}\n"
                          "{\"step\":2,\"time\":2.0,\"val");
  auto points = read_metrics_jsonl(path);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[0].key, "loss");
  EXPECT_DOUBLE_EQ(*points[0].value, 2.5);
  EXPECT_FALSE(points[1].value.has_value());
}

TEST(MetricsIngestTest, MalformedMiddleLineNamesTheLine) {
  testing::TempDir dir;
  std::string path = dir / "metrics.jsonl";
  core::write_file_atomic(path,
                          "{\"step\":1,\"time\":1,\"values\":{}}\nnot json\n"
                          "{\"step\":3,\"time\":1,\"values\":{}}\n");
  try {
    read_metrics_jsonl(path);
    FAIL();
  } catch (const StoreError& e) {
    EXPECT_NE(std::string(e.what()).find("metrics.jsonl:2"), std::string::npos) << e.what();
  }
}

TEST(MetricsIngestTest, MissingFileIsEmpty) {
  EXPECT_TRUE(read_metrics_jsonl("/nonexistent/metrics.jsonl").empty());
}

}  // namespace
}  // namespace upcycle::tracking
