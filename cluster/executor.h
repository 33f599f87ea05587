// Executors run jobs (`upcycle stage --spec DIR/spec.json`) somewhere: child processes on this
// machine (local_executor.h) or a Slurm cluster (slurm_executor.h). The runner sees only this
// interface.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "core/job_status.h"

namespace upcycle::cluster {

/// What to run: the command, its job directory (log.txt goes there) and extra environment.
/// `processes` > 1 starts that many copies as one data-parallel job (torchrun's variables: RANK,
/// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT, set for one process too, so that those of the
/// runner's own shell never reach a job); the job ends when every copy has.
struct JobLaunch {
  std::string key;
  std::string dir;
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  int processes = 1;
};

struct JobEvent {
  std::string key;
  core::JobStatus state = core::JobStatus::kRunning;  ///< kDone, kFailed or kPreempted
  int exit_code = 0;
  std::string scheduler_id;  ///< pid locally, job id on Slurm
};

class Executor {
 public:
  virtual ~Executor() = default;
  /// Starts a job; returns its scheduler id. Throws ClusterError when it cannot be started.
  virtual std::string submit(const JobLaunch& job) = 0;
  /// Blocks until at least one job finishes (or `interrupted()` becomes true); returns finished
  /// ones.
  virtual std::vector<JobEvent> wait_any() = 0;
  /// Asks every running job to stop (SIGTERM: they checkpoint and exit "preempted").
  virtual void terminate_all() = 0;
  virtual int running() const = 0;
};

}  // namespace upcycle::cluster
