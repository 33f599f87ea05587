// Runs a program (no shell) in a working directory and captures its exit code and combined output.
#pragma once

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace upcycle::testing {

struct ProcessResult {
  int exit_code = -1;
  std::string output;  ///< stdout and stderr interleaved
};

// In a forked child: output to `fd`, then exec argv in `cwd`. Never returns.
[[noreturn]] inline void exec_child(std::vector<std::string> args, const std::string& cwd, int fd) {
  std::vector<char*> cargs;
  for (auto& a : args) cargs.push_back(a.data());
  cargs.push_back(nullptr);
  if (fd >= 0) {
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::close(fd);
  }
  if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) ::_exit(126);
  ::execv(cargs[0], cargs.data());
  ::_exit(127);
}

/// `max_file_bytes` > 0 runs it under that file-size limit (ulimit -f): every write past it fails
/// with EFBIG, as writes on a full disk fail with ENOSPC.
inline ProcessResult run_binary(const std::vector<std::string>& argv, const std::string& cwd = "",
                                long max_file_bytes = 0) {
  int fds[2];
  if (::pipe(fds) != 0) return {};
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    if (max_file_bytes > 0) {
      rlimit lim{static_cast<rlim_t>(max_file_bytes), static_cast<rlim_t>(max_file_bytes)};
      if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(125);
    }
    exec_child(argv, cwd, fds[1]);
  }
  ::close(fds[1]);
  ProcessResult r;
  char buf[4096];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof(buf))) > 0) r.output.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

}  // namespace upcycle::testing

namespace upcycle::testing {

/// Starts a program in the background (no shell), its output appended to `log`; returns its pid.
inline pid_t spawn_binary(const std::vector<std::string>& argv, const std::string& cwd,
                          const std::string& log) {
  pid_t pid = ::fork();
  if (pid == 0) exec_child(argv, cwd, ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644));
  return pid;
}

}  // namespace upcycle::testing
