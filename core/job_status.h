// The one job status type: what the store's `jobs.status` and `job_attempts.status` hold, what both
// executors report and what `status` prints. Every other layer maps its own vocabulary (Slurm's
// state names, a child's exit) onto it in one place.
#pragma once

#include <optional>
#include <string>

namespace upcycle::core {

enum class JobStatus {
  kPending,     ///< planned, not yet handed to an executor (or waiting to be retried)
  kSubmitting,  ///< Slurm: the intent is recorded, sbatch has not yet returned an id
  kQueued,      ///< Slurm: in the queue, not running (its reason says why)
  kRunning,
  kDone,
  kFailed,
  kPreempted,  ///< stopped after a checkpoint (interrupted, or requeued by the scheduler)
  kCancelled,  ///< `upcycle cancel`, or Slurm cancelled it (an input failed)
};

/// "pending", "submitting", "queued", "running", "done", "failed", "preempted", "cancelled".
const char* to_string(JobStatus s);
/// The status named `text`; nullopt for anything else.
std::optional<JobStatus> parse_job_status(const std::string& text);

/// Not finished: pending, submitting, queued, running or preempted (it will run again).
bool is_active(JobStatus s);

/// The active statuses as an SQL list of literals, "('pending', ..., 'preempted')", for queries
/// that select unfinished jobs.
const std::string& active_statuses_sql();

}  // namespace upcycle::core
