#include "core/host.h"

#include <unistd.h>

namespace upcycle::core {

std::string host_name() {
  char buf[256] = {0};
  if (::gethostname(buf, sizeof(buf) - 1) != 0) return "";
  return buf;
}

}  // namespace upcycle::core
