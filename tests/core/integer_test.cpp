// core/integer.h, the one conversion of integers from outside: exact, range-checked, never a wrap,
// a round or a partial read; and the checked arithmetic counts use.
#include "core/integer.h"

#include <gtest/gtest.h>

#include <limits>
#include <stdexcept>

namespace upcycle::core {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

TEST(IntegerTest, ExactValuesWithSuffixesFractionsAndExponents) {
  EXPECT_EQ(parse_integer("4096"), 4096);
  EXPECT_EQ(parse_integer("-17"), -17);
  EXPECT_EQ(parse_integer("+5"), 5);
  EXPECT_EQ(parse_integer("4k"), 4000);
  EXPECT_EQ(parse_integer("1.5B"), 1500000000);
  EXPECT_EQ(parse_integer("2e6"), 2000000);
  EXPECT_EQ(parse_integer("2.5e1"), 25);
  EXPECT_EQ(parse_integer("2.50k"), 2500);
  EXPECT_EQ(parse_integer("1.05k"), 1050);
  EXPECT_EQ(parse_integer("3.000"), 3) << "zeros after the point are exact";
  EXPECT_EQ(parse_integer("0.3T"), 300000000000);
  EXPECT_EQ(parse_integer("007"), 7);
  EXPECT_EQ(parse_integer("9007199254740993"), 9007199254740993)
      << "2^53 + 1: no trip through a double";
  EXPECT_EQ(parse_integer("9223372036854775807"), kMax);
  EXPECT_EQ(parse_integer("-9223372036854775808"), kMin);
}

TEST(IntegerTest, WhatIsNotAnIntegerIsRefused) {
  for (const char* bad :
       {"", "-", "k", "1kk", "0x10", "2.7", "1.5k5", "1e", "1e-1", "1 ", " 1", "1,000", "nan",
        "inf", "1e999", "12345678901234567890123456789012345", "4 k", "1.2.3", "١٢"}) {
    EXPECT_THROW(parse_integer(bad), std::invalid_argument) << "'" << bad << "'";
  }
  EXPECT_THROW(parse_integer("4k", {}, false), std::invalid_argument) << "suffixes off";
}

TEST(IntegerTest, OutOfRangeIsAnErrorNotAWrap) {
  EXPECT_THROW(parse_integer("9223372036854775808"), std::out_of_range);
  EXPECT_THROW(parse_integer("-9223372036854775809"), std::out_of_range);
  EXPECT_THROW(parse_integer("1e19"), std::out_of_range);
  EXPECT_THROW(parse_integer("10T", {0, 1000}), std::out_of_range);
  EXPECT_THROW(parse_integer("4294967297", kIntRange), std::out_of_range);
  try {
    parse_integer("18446744073709551615", {0});
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "does not fit a signed 64-bit integer, got '18446744073709551615'");
  }
  try {
    parse_integer("-1", {0});
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "must be >= 0, got '-1'");
  }
  try {
    parse_integer("0", {1, 4096});
    FAIL();
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "must be in [1, 4096], got '0'");
  }
}

TEST(IntegerTest, CheckedArithmetic) {
  EXPECT_EQ(checked_mul(1 << 20, 1 << 20, "x"), int64_t(1) << 40);
  EXPECT_THROW(checked_mul(int64_t(1) << 32, int64_t(1) << 32, "params"), std::overflow_error);
  EXPECT_THROW(checked_add(kMax, 1, "flops"), std::overflow_error);
  EXPECT_EQ(checked_add(kMax - 1, 1, "x"), kMax);
}

}  // namespace
}  // namespace upcycle::core
