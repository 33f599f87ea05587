// Runs a program (no shell: argv is exec'd as given) and captures its output, with a time limit.
// The Slurm executor drives sbatch, squeue, scontrol, sacct and scancel through it.
#pragma once

#include <string>
#include <vector>

namespace upcycle::cluster {

struct ProcessResult {
  int exit_code = 0;      ///< 128 + signal when killed; 124 when it ran past the limit
  bool timed_out = false;
  std::string out;        ///< stdout
  std::string err;        ///< stderr
};

/// Runs `argv` (argv[0] looked up on PATH) to completion or `timeout_s`, whichever comes first (then
/// SIGKILL). Throws ClusterError when it cannot be started at all (not found, fork failed).
ProcessResult run_process(const std::vector<std::string>& argv, double timeout_s = 60);

/// `text` as one shell word: single-quoted, with each ' written as '\''.
std::string shell_quote(const std::string& text);

}  // namespace upcycle::cluster
