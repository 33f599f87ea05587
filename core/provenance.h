// Which code produced a result: the git commit the binary was built from (and whether the tree had
// uncommitted edits) and the sha256 of the binary itself. Two builds from different uncommitted
// edits share a git sha but not a binary hash. Content keys do not use any of it
// (stages/spec/job_spec.h); the store keeps it beside every run and job so that each number traces
// to exact code.
#pragma once

#include <string>

namespace upcycle::core {

struct CodeVersion {
  std::string version;  ///< upcycle's own version, "0.1.0"
  std::string git_sha;  ///< "unknown" when built outside git
  bool git_dirty = false;
  std::string binary_sha256;  ///< of /proc/self/exe; "" when it cannot be read
};

/// This process's code (the binary is hashed once, on first use).
const CodeVersion& this_code();

}  // namespace upcycle::core
