// What the libFuzzer harnesses share. A harness treats upcycle::Error (a clear, user-facing
// message) as the expected outcome of bad input; anything else escaping (a third-party exception, a
// crash, a sanitizer report, an input that runs past -timeout) is a finding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace upcycle::fuzz {

/// A directory of this process's own under $TMPDIR (default /tmp), removed at exit.
const std::string& scratch_dir();

/// Writes `text` to `path` (truncating).
void write_text(const std::string& path, const std::string& text);

/// Prints `what` and aborts, so libFuzzer records the input as a crash.
[[noreturn]] void fail(const std::string& what);

}  // namespace upcycle::fuzz
