// What Slurm's commands print, parsed: sbatch --parsable, squeue -o "%A|%F|%k", squeue -O with
// our fields (kSqueueFields), scontrol -o show partition|node, sacct -n -X -P. Plain text in,
// values out, so each parser is unit-tested on real and odd lines
// (tests/cluster/slurm_output_test.cpp) without a cluster. Every integer goes through the one
// checked parser (core/integer.h).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/job_status.h"

namespace upcycle::cluster {

struct SlurmStatus {
  bool known = false;  ///< false: Slurm has no record of the id (purged, or never queued)
  core::JobStatus status = core::JobStatus::kFailed;
  std::string raw;     ///< Slurm's state name, e.g. PENDING, REQUEUED, TIMEOUT
  std::string reason;  ///< e.g. DependencyNeverSatisfied
  int exit_code = 0;
  int restarts = 0;
};

/// Slurm's job state names as ours: PENDING, REQUEUED, CONFIGURING, SUSPENDED and the like are
/// queued; RUNNING, COMPLETING, SIGNALING, STAGE_OUT running; PREEMPTED preempted; COMPLETED done;
/// CANCELLED (and "CANCELLED by 0") cancelled; the rest (FAILED, TIMEOUT, NODE_FAIL, ...) failed.
core::JobStatus status_of(const std::string& slurm_state);

/// Pending reasons that do not clear by waiting (a limit the job exceeds, a node that does not
/// exist, an account or QOS it may not use): the job is failed with the reason, not waited for.
bool reason_never_clears(const std::string& reason);

/// An integer Slurm printed ("137"; "1:0" for ExitCode, whose part after ':' is the signal), or
/// `fallback` when the text holds none.
int slurm_int(const std::string& text, int fallback);

/// Whether array task `task` is in scontrol's ArrayTaskId ("0-3%2", "1,3", "5", "[0-3]" pending).
bool array_task_in(const std::string& spec, int task);

/// "KEY=value KEY2=value ..." of one `scontrol -o show job` line; the first of a repeated key wins.
std::map<std::string, std::string> scontrol_fields(const std::string& line);

/// The squeue --Format fields squeue_statuses() reads, '|' after each.
inline constexpr const char* kSqueueFields =
    "JobArrayID:|,State:|,Reason:|,exit_code:|,RestartCnt:|";

/// The states of `ids` ("123", or "123_4" for array task 4) in `squeue --states=all -h -O
/// kSqueueFields` output (a pending array is one line, "42_[0-3%1]"; exit codes are wait
/// statuses: 256 is exit 1, 9 is 128 + SIGKILL). Ids not in it are absent.
std::map<std::string, SlurmStatus> squeue_statuses(const std::string& out,
                                                   const std::vector<std::string>& ids);

/// `sacct -n -X -P -o JobID,State,ExitCode` output by job id.
std::map<std::string, SlurmStatus> sacct_statuses(const std::string& out);

/// The job id of `sbatch --parsable` output ("ID" or "ID;cluster"), "" when it printed none.
std::string sbatch_job_id(const std::string& out);

/// In `squeue -h -o "%A|%F|%k"` output, the (array) job id whose comment is `comment`, if any; the
/// latest (highest id) when several are.
std::optional<std::string> squeue_job_with_comment(const std::string& out,
                                                   const std::string& comment);

}  // namespace upcycle::cluster
