// Small string helpers the standard library gains only in C++20.
#pragma once

#include <string_view>

namespace upcycle::core {

inline bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace upcycle::core
