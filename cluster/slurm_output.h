// What Slurm's commands print, parsed: sbatch --parsable, squeue -o "%A|%F|%k", scontrol -o show
// job, sacct -n -X -P. Plain text in, values out, so each parser is unit-tested on real and odd
// lines (tests/cluster/slurm_output_test.cpp) without a cluster. Every integer goes through the one
// checked parser (core/integer.h).
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

namespace upcycle::cluster {

enum class SlurmState { kActive, kDone, kFailed, kCancelled, kGone };

struct SlurmStatus {
  SlurmState state = SlurmState::kGone;
  std::string raw;     ///< Slurm's state name, e.g. PENDING, REQUEUED, TIMEOUT
  std::string reason;  ///< e.g. DependencyNeverSatisfied
  int exit_code = 0;
  int restarts = 0;
};

/// Slurm's job state names as ours: PENDING, RUNNING, REQUEUED, PREEMPTED, COMPLETING and the like
/// are not finished; COMPLETED is done; CANCELLED (and "CANCELLED by 0") is cancelled; the rest
/// failed.
SlurmState state_of(const std::string& slurm_state);

/// An integer Slurm printed ("137"; "1:0" for ExitCode, whose part after ':' is the signal), or
/// `fallback` when the text holds none.
int slurm_int(const std::string& text, int fallback);

/// Whether array task `task` is in scontrol's ArrayTaskId ("0-3%2", "1,3", "5", "[0-3]" pending).
bool array_task_in(const std::string& spec, int task);

/// "KEY=value KEY2=value ..." of one `scontrol -o show job` line; the first of a repeated key wins.
std::map<std::string, std::string> scontrol_fields(const std::string& line);

/// The states of `ids` ("123", or "123_4" for array task 4) in `scontrol -o show job` output. Ids
/// not in it are absent from the result.
std::map<std::string, SlurmStatus> scontrol_statuses(const std::string& out,
                                                     const std::vector<std::string>& ids);

/// `sacct -n -X -P -o JobID,State,ExitCode` output by job id.
std::map<std::string, SlurmStatus> sacct_statuses(const std::string& out);

/// The job id of `sbatch --parsable` output ("ID" or "ID;cluster"), "" when it printed none.
std::string sbatch_job_id(const std::string& out);

/// In `squeue -h -o "%A|%F|%k"` output, the (array) job id whose comment is `comment`, if any.
std::optional<std::string> squeue_job_with_comment(const std::string& out,
                                                   const std::string& comment);

}  // namespace upcycle::cluster
