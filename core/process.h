// Starting programs: the one place in the suite that forks or execs. No shell anywhere: argv is
// exec'd as given (argv[0] looked up on PATH when it has no '/'). Used by the executors (jobs,
// sbatch and friends), the command stage, gnuplot, the HF conversion scripts and the runner's job
// binary.
#pragma once

#include <sys/types.h>

#include <map>
#include <string>
#include <vector>

namespace upcycle::core {

/// How to start a child process.
struct SpawnOptions {
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;  ///< set over the inherited environment
  std::string cwd;                         ///< "" = the caller's
  int stdout_fd = -1;                      ///< -1 = inherited
  int stderr_fd = -1;                      ///< -1 = inherited
  bool own_process_group = false;          ///< setpgid(0, 0): signals to the group reach only it
  bool die_with_parent = false;            ///< SIGTERM when the parent dies (kill -9 included)
};

/// Starts the child and returns its pid. An exec failure (not found, not executable, a bad cwd) is
/// reported back through a close-on-exec pipe: throws ProcessError naming argv[0] and the reason.
pid_t spawn_process(const SpawnOptions& o);

/// Waits for `pid` (retrying on EINTR): its exit code, or 128 + signal.
int wait_process(pid_t pid);

/// A wait status as an exit code: WEXITSTATUS, or 128 + the signal.
int exit_code_of(int wait_status);

struct ProcessResult {
  int exit_code = 0;  ///< 128 + signal when killed; 124 when it ran past the limit
  bool timed_out = false;
  std::string out;  ///< stdout
  std::string err;  ///< stderr
};

/// Runs `argv` to completion or `timeout_s`, whichever comes first (then SIGKILL), capturing its
/// output. Throws ProcessError when it cannot be started at all.
ProcessResult run_process(const std::vector<std::string>& argv, double timeout_s = 60);

/// Replaces this process with `argv` (the runner's `stage` command hands over to upcycle-job this
/// way). Returns only by throwing ProcessError.
[[noreturn]] void exec_process(const std::vector<std::string>& argv);

/// `text` as one shell word: single-quoted, with each ' written as '\''.
std::string shell_quote(const std::string& text);

}  // namespace upcycle::core
