#include "core/provenance.h"

#include "core/build_info.h"
#include "core/error.h"
#include "core/sha256.h"

namespace upcycle::core {

const CodeVersion& this_code() {
  static const CodeVersion kCode = [] {
    CodeVersion c{kVersion, kGitSha, kGitDirty, ""};
    try {
      c.binary_sha256 = sha256_file("/proc/self/exe");
    } catch (const Error&) {
      // not Linux, or the binary was replaced while running: the git sha still says which code
    }
    return c;
  }();
  return kCode;
}

}  // namespace upcycle::core
