// Runs jobs as child processes of the runner, each in its own process group with stdout and stderr
// appended to DIR/log.txt. Ctrl-C reaches only the runner, which forwards SIGTERM to the children.
// A data-parallel job is N processes on this machine with a rendezvous on a free loopback port;
// when one rank fails, the others are stopped rather than left waiting in a collective.
#pragma once

#include <sys/types.h>

#include <map>

#include "cluster/executor.h"

namespace upcycle::cluster {

class LocalExecutor : public Executor {
 public:
  LocalExecutor() = default;
  std::string submit(const JobLaunch& job) override;
  std::vector<JobEvent> wait_any() override;
  void terminate_all() override;
  int running() const override { return static_cast<int>(jobs_.size()); }

 private:
  struct Running {
    std::vector<pid_t> pids;  ///< every rank's; the first is rank 0
    int left = 0;             ///< ranks still running
    int worst_status = 0;     ///< the wait status that decides the job's state
    bool failed = false;
  };
  pid_t spawn(const JobLaunch& job, const std::map<std::string, std::string>& extra_env,
              int log_fd);
  std::map<pid_t, std::string> children_;  ///< pid -> job key
  std::map<std::string, Running> jobs_;    ///< job key -> its processes
};

/// A TCP port on the loopback interface that is free now (the kernel picks it), for a rendezvous.
/// Throws ClusterError when there is none.
int free_loopback_port();

/// Maps an exit status to a state: 0 done, kExitPreempted preempted, anything else (or a signal)
/// failed.
JobEvent event_from_status(const std::string& key, int wait_status);

}  // namespace upcycle::cluster
