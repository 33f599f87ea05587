// What running a plan needs whatever executes it (the local scheduler in run.cpp, Slurm in
// slurm_run.cpp): the one-runner lock, registering runs, skipping complete jobs, forced re-runs,
// and each run's status from its jobs.
#pragma once

#include <functional>
#include <set>
#include <string>
#include <vector>

#include "core/job_status.h"
#include "runner/run.h"
#include "tracking/store.h"

namespace upcycle::runner {

/// One runner per store at a time: a second `run` or `resume` while one is active would launch the
/// same jobs twice. flock is released by the kernel however the holder dies (kill -9 included).
class RunnerLock {
 public:
  explicit RunnerLock(const std::string& store_path);
  ~RunnerLock();
  RunnerLock(const RunnerLock&) = delete;
  RunnerLock& operator=(const RunnerLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

/// Opens (creating its folder) the store a runner writes.
tracking::Store open_store_for_writing(const std::string& path);

/// "exit 1", or "killed by signal 9 (SIGKILL)" for an exit code of 128 + N.
std::string describe_exit(int exit_code);

/// The last `lines` lines of DIR/log.txt ("" when there is none).
std::string tail_of_log(const std::string& dir, size_t lines = 8);

/// A forced re-run starts from nothing, but replaces the old results only once it succeeds: its
/// directory is set aside (DIR.replaced) and the store keeps the old rows. After success,
/// replace_results drops the old rows (before the new ones are ingested) and the set-aside files;
/// after a failure, restore_replaced puts the old directory back and marks the job done again
/// (returns whether it did).
void set_aside(const PlannedJob& j);
void replace_results(tracking::Store& store, const std::string& key, const std::string& dir);
bool restore_replaced(tracking::Store& store, const std::string& key, const std::string& dir);

/// Jobs of forced stages and everything downstream of them.
std::set<size_t> forced_jobs(const Plan& plan, const std::vector<std::string>& force);

/// Provenance the runner knows, completed with what only the jobs know: the data manifest, LibTorch
/// version and device.
tracking::Provenance provenance_of(const RunPoint& p);

/// Registers every run with its params, jobs and provenance; returns their ids.
std::vector<int64_t> register_runs(tracking::Store& store, const std::vector<RunPoint>& points,
                                   const RunOptions& options, RunSummary& summary);

/// Forced jobs are set aside and start from nothing; jobs whose result is complete are kDone (and
/// ingested if a runner died between the job finishing and the ingest); the rest kPending.
std::vector<core::JobStatus> classify_jobs(const Plan& plan, tracking::Store& store,
                                           const std::set<size_t>& forced, RunSummary& summary);

/// Each run's status from its jobs' fates: "running" while unfinished (when !finished), else done,
/// failed or interrupted, with provenance completed.
void set_run_statuses(tracking::Store& store, const std::vector<RunPoint>& points,
                      const std::vector<int64_t>& ids,
                      const std::function<core::JobStatus(const std::string&)>& fate_of,
                      bool finished, bool interrupted);

}  // namespace upcycle::runner
