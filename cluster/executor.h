// Executors run jobs (`upcycle stage --spec DIR/spec.json`) somewhere: child processes on this machine
// (local_executor.h) or Slurm (a later issue). The runner sees only this interface.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace upcycle::cluster {

/// What to run: the command, its job directory (log.txt goes there) and extra environment.
struct JobLaunch {
  std::string key;
  std::string dir;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
};

enum class JobState { kRunning, kDone, kFailed, kPreempted };

struct JobEvent {
  std::string key;
  JobState state = JobState::kRunning;
  int exit_code = 0;
  std::string scheduler_id;  ///< pid locally, job id on Slurm
};

class Executor {
 public:
  virtual ~Executor() = default;
  /// Starts a job; returns its scheduler id. Throws ClusterError when it cannot be started.
  virtual std::string submit(const JobLaunch& job) = 0;
  /// Blocks until at least one job finishes (or `interrupted()` becomes true); returns finished ones.
  virtual std::vector<JobEvent> wait_any() = 0;
  /// Asks every running job to stop (SIGTERM: they checkpoint and exit "preempted").
  virtual void terminate_all() = 0;
  virtual int running() const = 0;
};

}  // namespace upcycle::cluster
