// UTF-8 validation. Text that reaches JSON output (the store's --format json, content keys,
// spec.json) must be valid UTF-8, or the JSON writer throws; so text is checked where it enters:
// recipe files, overrides, names.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace upcycle::core {

inline constexpr size_t kValidUtf8 = static_cast<size_t>(-1);

/// The offset of the first byte that does not belong to a well-formed UTF-8 sequence (overlong
/// forms, surrogates and code points past U+10FFFF included), or kValidUtf8.
size_t invalid_utf8_at(std::string_view s);

/// `s` with each maximal ill-formed subpart replaced by U+FFFD (Unicode's recommended practice,
/// which Python's `bytes.decode("utf-8", "replace")` and Rust's `from_utf8_lossy` follow).
std::string replace_invalid_utf8(std::string_view s);

}  // namespace upcycle::core
