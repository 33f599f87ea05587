// The name of this machine, for job results and run provenance.
#pragma once

#include <string>

namespace upcycle::core {

/// gethostname(), or "" when it fails.
std::string host_name();

}  // namespace upcycle::core
