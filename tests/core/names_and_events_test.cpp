// The result names (core/result_names.h) round trip and refuse near misses; CRC-32C matches its
// published check value; a TFRecord frames its data as TFRecord readers expect. The event files
// themselves are read back by the tensorboard package in tests/e2e/everyday_test.py.
#include <gtest/gtest.h>

#include <cstring>

#include "core/result_names.h"
#include "core/tensorboard.h"

namespace upcycle::core {
namespace {

TEST(ResultNamesTest, MadeAndParsedInOnePlace) {
  const ResultTask p = parse_result_task(perplexity_task("code"));
  EXPECT_EQ(p.kind, ResultKind::kPerplexity);
  EXPECT_EQ(p.domain, "code");
  const ResultTask r = parse_result_task(routing_task("law/x"));
  EXPECT_EQ(r.kind, ResultKind::kRouting);
  EXPECT_EQ(r.domain, "law/x");
  for (const char* task : {"cont/code", "mmlu", "ppl/", "routing", "pplx/code"}) {
    const ResultTask t = parse_result_task(task);
    EXPECT_EQ(t.kind, ResultKind::kTask) << task;
    EXPECT_EQ(t.task, task);
  }
  const auto cell = parse_router_metric(router_metric("attn", 11, 3));
  ASSERT_TRUE(cell);
  EXPECT_EQ(cell->router, "attn");
  EXPECT_EQ(cell->layer, 11);
  EXPECT_EQ(cell->expert, 3);
  for (const char* bad : {"util/l1", "util/l/e1", "util/lx/e1", "/l1/e2", "Util/l1/e2",
                          "util/l1/e2/x", "util/l1234567890/e1", "ffn/l-1/e0", "lb_loss/l0"}) {
    EXPECT_FALSE(parse_router_metric(bad)) << bad;
  }
  EXPECT_EQ(layer_metric("lb_loss", 2), "lb_loss/l2");
}

TEST(TensorBoardTest, Crc32cAndTheRecordFraming) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // the CRC-32C check value (RFC 3720, B.4)
  EXPECT_EQ(crc32c(""), 0u);
  const std::string data = "payload";
  const std::string rec = tfrecord(data);
  ASSERT_EQ(rec.size(), 8 + 4 + data.size() + 4);
  uint64_t len = 0;
  std::memcpy(&len, rec.data(), 8);  // little-endian hosts
  EXPECT_EQ(len, data.size());
  uint32_t crc_len = 0, crc_data = 0;
  std::memcpy(&crc_len, rec.data() + 8, 4);
  std::memcpy(&crc_data, rec.data() + 12 + data.size(), 4);
  EXPECT_EQ(crc_len, masked_crc32c(rec.substr(0, 8)));
  EXPECT_EQ(crc_data, masked_crc32c(data));
  const uint32_t c = crc32c(data);
  EXPECT_EQ(masked_crc32c(data), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

}  // namespace
}  // namespace upcycle::core
