#include "core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "core/error.h"

extern char** environ;

namespace upcycle::core {
namespace {

// argv and envp as the exec calls take them, built before fork: the child makes only
// async-signal-safe calls.
struct ExecArgs {
  std::vector<std::string> strings;
  std::vector<std::string> env_strings;
  std::vector<char*> argv;
  std::vector<char*> envp;

  explicit ExecArgs(const SpawnOptions& o) : strings(o.argv) {
    for (char** e = environ; *e; ++e) {
      const std::string s(*e);
      if (!o.env.count(s.substr(0, s.find('=')))) env_strings.push_back(s);
    }
    for (const auto& [k, v] : o.env) env_strings.push_back(k + "=" + v);
    for (auto& s : strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
  }
};

[[noreturn]] void child_fail(int report_fd) {
  const int e = errno;
  (void)!::write(report_fd, &e, sizeof(e));
  ::_exit(127);
}

[[noreturn]] void run_child(const SpawnOptions& o, ExecArgs& a, pid_t parent, int report_fd) {
  if (o.own_process_group) ::setpgid(0, 0);
  ::signal(SIGPIPE, SIG_DFL);  // the runner ignores it; a child gets the default back
  if (o.die_with_parent) {
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::raise(SIGTERM);  // the parent died before prctl
  }
  if (o.stdout_fd >= 0 && ::dup2(o.stdout_fd, STDOUT_FILENO) < 0) child_fail(report_fd);
  if (o.stderr_fd >= 0 && ::dup2(o.stderr_fd, STDERR_FILENO) < 0) child_fail(report_fd);
  if (!o.cwd.empty() && ::chdir(o.cwd.c_str()) != 0) child_fail(report_fd);
  ::execvpe(a.argv[0], a.argv.data(), a.envp.data());
  child_fail(report_fd);
}

// Reads both pipes until EOF or the deadline.
void drain(int out_fd, int err_fd, ProcessResult& r,
           std::chrono::steady_clock::time_point deadline) {
  pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
  std::string* sinks[2] = {&r.out, &r.err};
  int open = 2;
  char buf[65536];
  while (open > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      return;
    }
    int n = ::poll(fds, 2, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t got = ::read(fds[i].fd, buf, sizeof(buf));
      if (got > 0) {
        sinks[i]->append(buf, static_cast<size_t>(got));
      } else if (got == 0 || errno != EINTR) {
        fds[i].fd = -1;
        --open;
      }
    }
  }
}

void close_pair(int p[2]) {
  ::close(p[0]);
  ::close(p[1]);
}

}  // namespace

pid_t spawn_process(const SpawnOptions& o) {
  if (o.argv.empty()) throw InternalError("spawn_process: empty argv");
  ExecArgs args(o);
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0)
    throw ProcessError(std::string("pipe: ") + std::strerror(errno));
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int e = errno;
    close_pair(report);
    throw ProcessError(o.argv[0] + ": cannot start: fork: " + std::strerror(e));
  }
  if (pid == 0) {
    ::close(report[0]);
    run_child(o, args, parent, report[1]);
  }
  ::close(report[1]);
  if (o.own_process_group) ::setpgid(pid, pid);  // both sides, so no signal races the child's call
  int child_errno = 0;
  ssize_t got = 0;
  do {
    got = ::read(report[0], &child_errno, sizeof(child_errno));
  } while (got < 0 && errno == EINTR);
  ::close(report[0]);
  if (got == static_cast<ssize_t>(sizeof(child_errno))) {
    wait_process(pid);
    throw ProcessError(o.argv[0] + ": cannot run: " + std::strerror(child_errno) +
                       (o.cwd.empty() ? "" : " (in " + o.cwd + ")"));
  }
  return pid;
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

int wait_process(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR)
      throw ProcessError("waitpid " + std::to_string(pid) + ": " + std::strerror(errno));
  }
  return exit_code_of(status);
}

ProcessResult run_process(const std::vector<std::string>& argv, double timeout_s) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0)
    throw ProcessError(std::string("pipe: ") + std::strerror(errno));
  if (::pipe2(err, O_CLOEXEC) != 0) {
    close_pair(out);
    throw ProcessError(std::string("pipe: ") + std::strerror(errno));
  }
  SpawnOptions o;
  o.argv = argv;
  o.stdout_fd = out[1];
  o.stderr_fd = err[1];
  pid_t pid = -1;
  try {
    pid = spawn_process(o);
  } catch (...) {
    close_pair(out);
    close_pair(err);
    throw;
  }
  ::close(out[1]);
  ::close(err[1]);
  ProcessResult r;
  drain(out[0], err[0], r,
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::milliseconds>(
                                               std::chrono::duration<double>(timeout_s)));
  if (r.timed_out) ::kill(pid, SIGKILL);
  ::close(out[0]);
  ::close(err[0]);
  const int code = wait_process(pid);
  r.exit_code = r.timed_out ? 124 : code;
  return r;
}

void exec_process(const std::vector<std::string>& argv) {
  if (argv.empty()) throw InternalError("exec_process: empty argv");
  SpawnOptions o;
  o.argv = argv;
  ExecArgs args(o);
  ::signal(SIGPIPE, SIG_DFL);
  ::execvpe(args.argv[0], args.argv.data(), args.envp.data());
  ::signal(SIGPIPE, SIG_IGN);
  throw ProcessError(argv[0] + ": cannot run: " + std::strerror(errno));
}

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace upcycle::core
