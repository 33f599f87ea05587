// "Did you mean": the closest candidate to a misspelt word, for error messages.
#pragma once

#include <string>
#include <vector>

namespace upcycle::core {

/// Closest candidate by optimal-string-alignment distance (edits and adjacent transpositions), or
/// "" when nothing is within max(1, length/2).
std::string closest_match(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace upcycle::core
