// The Slurm executor: the plan's jobs queued at once with their dependencies, through Slurm's own
// commands (sbatch --parsable, squeue, scontrol, sacct where accounting exists, scancel); no
// libslurm, whose API changes with every release. The runner submits and may exit; `upcycle
// status`, `wait`, `collect` and `resume` re-attach through each job's scheduler id, kept in the
// store as "slurm:ID".
//
// Each submission is one batch script (ROOT/slurm/<name>.sbatch): the stage's setup lines, then
// `srun upcycle-job stage --spec DIR/spec.json` (one rank per task; ranks from SLURM_*, MASTER_ADDR
// the address (NodeAddr) of the allocation's first node, never a name that may not resolve,
// MASTER_PORT from the job id; torchrun's variables of the submitting shell unset), its output
// appended to DIR/log.txt. USR2 (sent `signal_seconds` before the time limit) and TERM are
// forwarded to the step; a stage that exits 75 (checkpoint written) is requeued with `scontrol
// requeue` until `max_requeues`, and resumes from its checkpoint (SLURM_RESTART_COUNT counts the
// attempts), unless `upcycle cancel` left its mark (DIR/cancel-requested): then it just ends.
// Several jobs of one stage with the same inputs go as one job array. Jobs are named `upc-<key
// prefix>` with the comment `upcycle:<job dir>` (one root's job, not another's with the same key):
// after an sbatch error or timeout the executor looks it up before it submits again.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cluster/slurm_output.h"
#include "cluster/slurm_resources.h"

namespace upcycle::cluster {

struct SlurmJob {
  std::string key;
  std::string label;                       ///< the stage label, for people
  std::string dir;                         ///< the job directory: DIR/spec.json, DIR/log.txt
  std::map<std::string, std::string> env;  ///< exported before the step (thread counts)
  int processes = 1;                       ///< ranks (Slurm tasks)
  int threads = 1;                         ///< CPUs per rank
  SlurmResources resources;
};

class SlurmExecutor {
 public:
  /// `scripts_dir` holds the batch scripts and sbatch's own output; `job_exe` is the binary jobs
  /// run
  /// (`JOB_EXE stage --spec DIR/spec.json`).
  SlurmExecutor(std::string scripts_dir, std::string job_exe);

  /// Submits `jobs` (one, or several of one stage as an array; they share the first one's
  /// resources) to start after every id in `after` succeeded. Returns one id per job: "123", or
  /// "123_0", "123_1". Throws ClusterError with sbatch's message.
  std::vector<std::string> submit(const std::vector<SlurmJob>& jobs,
                                  const std::vector<std::string>& after);

  /// States of `ids` from one `squeue --jobs` call (our jobs only, finished ones it still
  /// remembers included), and one sacct call for the ids it has forgotten, where accounting
  /// exists. Ids Slurm knows nothing of are not `known`. Throws ClusterError when the controller
  /// does not answer.
  std::map<std::string, SlurmStatus> poll(const std::vector<std::string>& ids);

  /// `sbatch --test-only` with the job's options: nullopt when Slurm would accept it, else its
  /// refusal ("Requested time limit is invalid (missing or exceeds some limit)").
  std::optional<std::string> test_only(const SlurmJob& job) const;

  /// scancel; ids already finished are ignored.
  void cancel(const std::vector<std::string>& ids);

  /// The job name of a submission whose first job has `key`.
  static std::string job_name(const std::string& key);
  /// The id of a queued or running submission of the job `key` in `dir`, if any (idempotent
  /// resubmission); with `finished_too`, also one that has ended but that the controller still
  /// remembers (the latest). Nullopt also when squeue fails.
  std::optional<std::string> find_active(const std::string& key, const std::string& dir,
                                         bool finished_too = false);

  /// The batch script of a submission (also written next to the sbatch call), for tests and
  /// --specs.
  std::string script(const std::vector<SlurmJob>& jobs) const;

 private:
  std::string scripts_dir_;
  std::string upcycle_;
};

}  // namespace upcycle::cluster
