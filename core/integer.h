// The one checked conversion of an integer that comes from outside: recipe values, CLI flags, query
// literals, spec files, Hugging Face config.json. Nothing is rounded, wrapped or read halfway: "1k"
// is 1000 or an error, never 1; 9007199254740993 stays exact (no trip through a double); "-1" is
// never 2^64-1; "0x10" and "2.7" are errors. Arithmetic on counts from outside uses
// checked_mul/checked_add.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace upcycle::core {

struct IntegerRange {
  int64_t lo = std::numeric_limits<int64_t>::min();
  int64_t hi = std::numeric_limits<int64_t>::max();
};

/// What an `int` holds; for fields whose own checks come after the parse.
inline constexpr IntegerRange kIntRange = {std::numeric_limits<int>::min(),
                                           std::numeric_limits<int>::max()};

/// Parses an optional sign, decimal digits, an optional fraction and exponent ("1.5e3") and, when
/// `suffixes`, one of k K M B G T (10^3 ... 10^12). The value must be an exact integer in `range`.
/// Throws std::invalid_argument when the text is not an integer ("not an integer (has a fractional
/// part): '2.7'") and std::out_of_range when it is one outside `range` (what() is
/// range_requirement(range), or "does not fit a signed 64-bit integer" past an unbounded side, and
/// the text); callers add the key or flag.
int64_t parse_integer(std::string_view text, IntegerRange range = {}, bool suffixes = true);

/// "must be in [1, 4096]", "must be >= 0", "must be <= 7".
std::string range_requirement(IntegerRange range);

/// a * b and a + b, or std::overflow_error naming `what`.
int64_t checked_mul(int64_t a, int64_t b, const char* what);
int64_t checked_add(int64_t a, int64_t b, const char* what);

}  // namespace upcycle::core
