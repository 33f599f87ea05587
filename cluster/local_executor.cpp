#include "cluster/local_executor.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/job_files.h"

extern char** environ;

namespace upcycle::cluster {

JobEvent event_from_status(const std::string& key, int status) {
  JobEvent ev;
  ev.key = key;
  if (WIFEXITED(status)) {
    ev.exit_code = WEXITSTATUS(status);
    ev.state = ev.exit_code == kExitOk ? JobState::kDone
               : ev.exit_code == kExitPreempted ? JobState::kPreempted
                                                : JobState::kFailed;
  } else {
    ev.exit_code = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ev.state = JobState::kFailed;
  }
  return ev;
}

std::string LocalExecutor::submit(const JobLaunch& job) {
  std::string log = job.dir + "/" + core::kLogFile;
  // Everything the child needs is prepared before fork: only async-signal-safe calls after it.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    std::string s(*e);
    if (!job.env.count(s.substr(0, s.find('=')))) env_strings.push_back(s);
  }
  for (const auto& [k, v] : job.env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp, argv;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = job.argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw ClusterError("cannot open " + log + ": " + std::strerror(errno));
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fd);
    throw ClusterError("fork failed for job " + job.key + ": " + std::strerror(errno));
  }
  if (pid == 0) {
    ::setpgid(0, 0);
    // If the runner dies (kill -9 included), the job gets SIGTERM: it checkpoints and exits
    // "preempted", and `upcycle resume` continues it. The check closes the race with an early death.
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (::getppid() != parent) ::raise(SIGTERM);
    ::dup2(fd, STDOUT_FILENO);
    ::dup2(fd, STDERR_FILENO);
    ::execve(argv[0], argv.data(), envp.data());
    const char msg[] = "[upcycle] error: exec of the job command failed\n";
    ssize_t rc = ::write(STDERR_FILENO, msg, sizeof(msg) - 1);
    (void)rc;
    ::_exit(127);
  }
  ::setpgid(pid, pid);
  ::close(fd);
  children_[pid] = job.key;
  return std::to_string(pid);
}

std::vector<JobEvent> LocalExecutor::wait_any() {
  std::vector<JobEvent> events;
  if (children_.empty()) return events;
  int status = 0;
  pid_t pid = ::waitpid(-1, &status, 0);
  if (pid < 0) return events;  // EINTR: the caller checks for Ctrl-C and calls again
  do {
    auto it = children_.find(pid);
    if (it != children_.end()) {
      JobEvent ev = event_from_status(it->second, status);
      ev.scheduler_id = std::to_string(pid);
      events.push_back(ev);
      children_.erase(it);
    }
    pid = ::waitpid(-1, &status, WNOHANG);  // collect others that finished meanwhile
  } while (pid > 0);
  return events;
}

void LocalExecutor::terminate_all() {
  for (const auto& [pid, key] : children_) ::kill(-pid, SIGTERM);
}

}  // namespace upcycle::cluster
