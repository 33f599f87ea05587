#include "cluster/slurm_command.h"

#include "core/error.h"

namespace upcycle::cluster {

core::ProcessResult slurm_checked(const std::vector<std::string>& argv) {
  core::ProcessResult r = core::run_process(argv, kSlurmCommandTimeoutS);
  if (r.exit_code != 0) {
    throw ClusterError(argv[0] + " failed (exit " + std::to_string(r.exit_code) +
                       (r.timed_out ? ", timed out" : "") +
                       "): " + (r.err.empty() ? r.out : r.err));
  }
  return r;
}

}  // namespace upcycle::cluster
