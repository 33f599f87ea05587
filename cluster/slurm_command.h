// Running one of Slurm's commands: a time limit, and its failure as a ClusterError with what it
// printed.
#pragma once

#include <string>
#include <vector>

#include "core/process.h"

namespace upcycle::cluster {

inline constexpr double kSlurmCommandTimeoutS = 60;

/// Runs `argv`; throws ClusterError "ARGV0 failed (exit N[, timed out]): its message" unless it
/// exits 0.
core::ProcessResult slurm_checked(const std::vector<std::string>& argv);

}  // namespace upcycle::cluster
