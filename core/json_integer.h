// nlohmann::json converts 2.5 to 2, -1 to 2^64-1 and 1e300 to whatever the cast gives (undefined
// behaviour) without a word. Readers of integers from JSON ask this first.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>

#include <nlohmann/json.hpp>

namespace upcycle::core {

/// "" when `v` is an integer that T holds exactly, else why not ("expected an integer, got 2.5").
/// A value of another type (a string) is left to the caller's type check: "".
template <typename T>
std::string integer_problem(const nlohmann::json& v) {
  static_assert(std::is_integral_v<T> && !std::is_same_v<T, bool>);
  if (!v.is_number()) return "";
  if (!v.is_number_integer()) return "expected an integer, got " + v.dump();
  const bool fits =
      v.is_number_unsigned()
          ? v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<T>::max())
          : v.get<int64_t>() >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
                (std::is_unsigned_v<T> ||
                 v.get<int64_t>() <= static_cast<int64_t>(std::numeric_limits<T>::max()));
  if (fits) return "";
  return "out of range for " + std::string(std::is_signed_v<T> ? "a " : "an unsigned ") +
         std::to_string(sizeof(T) * 8) + "-bit integer: " + v.dump();
}

}  // namespace upcycle::core
