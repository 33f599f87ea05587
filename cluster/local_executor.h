// Runs jobs as child processes of the runner, each in its own process group with stdout and stderr
// appended to DIR/log.txt. Ctrl-C reaches only the runner, which forwards SIGTERM to the children.
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
  int running() const override { return static_cast<int>(children_.size()); }

 private:
  std::map<pid_t, std::string> children_;  ///< pid -> job key
};

/// Maps an exit status to a state: 0 done, kExitPreempted preempted, anything else (or a signal) failed.
JobEvent event_from_status(const std::string& key, int wait_status);

}  // namespace upcycle::cluster
