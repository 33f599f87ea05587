#include "cluster/local_executor.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "core/job_files.h"
#include "core/process.h"

namespace upcycle::cluster {

JobEvent event_from_status(const std::string& key, int status) {
  JobEvent ev;
  ev.key = key;
  if (WIFEXITED(status)) {
    ev.exit_code = WEXITSTATUS(status);
    ev.state = ev.exit_code == kExitOk          ? core::JobStatus::kDone
               : ev.exit_code == kExitPreempted ? core::JobStatus::kPreempted
                                                : core::JobStatus::kFailed;
  } else {
    ev.exit_code = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    ev.state = core::JobStatus::kFailed;
  }
  return ev;
}

namespace {

bool is_failure(int status) {
  return !WIFEXITED(status) ||
         (WEXITSTATUS(status) != kExitOk && WEXITSTATUS(status) != kExitPreempted);
}

}  // namespace

int free_loopback_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw ClusterError(std::string("socket: ") + std::strerror(errno));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = -1;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  if (port < 0) throw ClusterError("no free loopback port for a data-parallel rendezvous");
  return port;
}

pid_t LocalExecutor::spawn(const JobLaunch& job,
                           const std::map<std::string, std::string>& extra_env, int fd) {
  core::SpawnOptions o;
  o.argv = job.argv;
  o.env = job.env;
  o.env.insert(extra_env.begin(), extra_env.end());  // the job's own settings win over the rank's
  o.stdout_fd = o.stderr_fd = fd;
  o.own_process_group = true;
  // If the runner dies (kill -9 included), the job gets SIGTERM: it checkpoints and exits
  // "preempted", and `upcycle resume` continues it.
  o.die_with_parent = true;
  pid_t pid = -1;
  try {
    pid = core::spawn_process(o);
  } catch (const ProcessError& e) {
    throw ClusterError("job " + job.key + ": " + e.what());
  }
  children_[pid] = job.key;
  return pid;
}

std::string LocalExecutor::submit(const JobLaunch& job) {
  if (job.processes < 1) throw ClusterError("job " + job.key + ": processes must be >= 1");
  std::string log = job.dir + "/" + core::kLogFile;
  int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw ClusterError("cannot open " + log + ": " + std::strerror(errno));
  Running run;
  try {
    // Always set, so that torchrun's variables of the runner's own shell never reach a job.
    std::map<std::string, std::string> rank_env = {
        {"WORLD_SIZE", std::to_string(job.processes)},
        {"MASTER_ADDR", "127.0.0.1"},
        {"MASTER_PORT", std::to_string(free_loopback_port())}};
    for (int r = 0; r < job.processes; ++r) {
      rank_env["RANK"] = rank_env["LOCAL_RANK"] = std::to_string(r);
      run.pids.push_back(spawn(job, rank_env, fd));
      ++run.left;
    }
  } catch (...) {
    for (pid_t p : run.pids) ::kill(-p, SIGTERM);
    ::close(fd);
    throw;
  }
  ::close(fd);
  std::string id = std::to_string(run.pids.front());
  jobs_[job.key] = std::move(run);
  return id;
}

std::vector<JobEvent> LocalExecutor::wait_any() {
  std::vector<JobEvent> events;
  if (jobs_.empty()) return events;
  int status = 0;
  pid_t pid = ::waitpid(-1, &status, 0);
  if (pid < 0) return events;  // EINTR: the caller checks for Ctrl-C and calls again
  do {
    auto it = children_.find(pid);
    if (it != children_.end()) {
      const std::string key = it->second;
      children_.erase(it);
      Running& run = jobs_.at(key);
      --run.left;
      if (is_failure(status) && !run.failed) {
        // One rank failed: the job has; stop the others rather than leave them in a collective.
        run.failed = true;
        run.worst_status = status;
        for (pid_t p : run.pids) {
          if (children_.count(p)) ::kill(-p, SIGTERM);
        }
      } else if (!run.failed &&
                 (pid == run.pids.front() || WEXITSTATUS(status) == kExitPreempted)) {
        run.worst_status =
            status;  // rank 0 speaks for the job unless a rank was preempted or failed
      }
      if (run.left == 0) {
        JobEvent ev = event_from_status(key, run.worst_status);
        ev.scheduler_id = std::to_string(run.pids.front());
        events.push_back(ev);
        jobs_.erase(key);
      }
    }
    pid = ::waitpid(-1, &status, WNOHANG);  // collect others that finished meanwhile
  } while (pid > 0);
  return events;
}

void LocalExecutor::terminate_all() {
  for (const auto& [pid, key] : children_) ::kill(-pid, SIGTERM);
}

}  // namespace upcycle::cluster
