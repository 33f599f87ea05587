#include "core/integer.h"

#include <limits>
#include <stdexcept>

namespace upcycle::core {
namespace {

using Wide = __int128;
constexpr int kMaxDigits = 30;    // past 10^30 every value is out of range anyway
constexpr int kMaxExponent = 40;  // likewise for |exponent|

int suffix_power(char c) {
  switch (c) {
    case 'k':
    case 'K':
      return 3;
    case 'M':
      return 6;
    case 'B':
    case 'G':
      return 9;
    case 'T':
      return 12;
    default:
      return -1;
  }
}

[[noreturn]] void not_integer(std::string_view text, const char* why) {
  throw std::invalid_argument("not an integer (" + std::string(why) + "): '" + std::string(text) +
                              "'");
}

// Reads [0-9]+ from text[at]; appends to `value`, counts into `digits` (leading zeros do not
// count).
size_t read_digits(std::string_view text, size_t at, Wide& value, int& digits, int& frac,
                   bool is_frac) {
  size_t start = at;
  for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at) {
    if (value == 0 && text[at] == '0' && !is_frac) continue;
    if (++digits > kMaxDigits) not_integer(text, "too many digits");
    value = value * 10 + (text[at] - '0');
    if (is_frac) ++frac;
  }
  return at - start;
}

}  // namespace

namespace {

// 16777216 reads better as 2^24: powers of two from 2^20 up are written so.
std::string bound_text(int64_t v) {
  if (v >= (int64_t(1) << 20) && (v & (v - 1)) == 0)
    return "2^" + std::to_string(63 - __builtin_clzll(uint64_t(v)));
  return std::to_string(v);
}

}  // namespace

std::string range_requirement(IntegerRange r) {
  const bool low = r.lo != std::numeric_limits<int64_t>::min(),
             high = r.hi != std::numeric_limits<int64_t>::max();
  if (low && high) return "must be in [" + bound_text(r.lo) + ", " + bound_text(r.hi) + "]";
  if (low) return "must be >= " + bound_text(r.lo);
  if (high) return "must be <= " + bound_text(r.hi);
  return "must fit a signed 64-bit integer";
}

int64_t parse_integer(std::string_view text, IntegerRange range, bool suffixes) {
  if (text.empty()) not_integer(text, "empty");
  size_t at = 0;
  const bool negative = text[0] == '-';
  if (text[0] == '-' || text[0] == '+') ++at;
  Wide value = 0;
  int digits = 0, frac = 0;
  const size_t whole = read_digits(text, at, value, digits, frac, false);
  at += whole;
  size_t fraction = 0;
  if (at < text.size() && text[at] == '.') {
    fraction = read_digits(text, ++at, value, digits, frac, true);
    at += fraction;
  }
  if (whole + fraction == 0) not_integer(text, "no digits");
  int exponent = 0;
  if (at < text.size() && (text[at] == 'e' || text[at] == 'E')) {
    ++at;
    const bool neg_exp = at < text.size() && text[at] == '-';
    if (at < text.size() && (text[at] == '-' || text[at] == '+')) ++at;
    size_t start = at;
    for (; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at) {
      exponent = exponent * 10 + (text[at] - '0');
      if (exponent > kMaxExponent) not_integer(text, "exponent too large");
    }
    if (at == start) not_integer(text, "no exponent digits");
    if (neg_exp) exponent = -exponent;
  }
  if (suffixes && at + 1 == text.size() && suffix_power(text[at]) >= 0)
    exponent += suffix_power(text[at++]);
  if (at != text.size())
    not_integer(text,
                suffixes ? "expected digits with an optional k, M, B or T" : "expected digits");
  exponent -= frac;
  for (; exponent < 0; ++exponent) {
    if (value % 10 != 0) not_integer(text, "has a fractional part");
    value /= 10;
  }
  const Wide limit = Wide(1) << 64;  // far outside int64 already: stop multiplying
  for (; exponent > 0 && value != 0; --exponent) {
    value *= 10;
    if (value > limit) break;
  }
  if (negative) value = -value;
  if (value < range.lo || value > range.hi) {
    // The violated side's bound; past an unbounded side, the 64 bits themselves.
    const bool unbounded_side = value < range.lo ? range.lo == std::numeric_limits<int64_t>::min()
                                                 : range.hi == std::numeric_limits<int64_t>::max();
    throw std::out_of_range((unbounded_side ? std::string("does not fit a signed 64-bit integer")
                                            : range_requirement(range)) +
                            ", got '" + std::string(text) + "'");
  }
  return static_cast<int64_t>(value);
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r))
    throw std::overflow_error(std::string(what) + " overflows a 64-bit integer");
  return r;
}

int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r))
    throw std::overflow_error(std::string(what) + " overflows a 64-bit integer");
  return r;
}

}  // namespace upcycle::core
