#include "cluster/slurm_output.h"

#include <set>
#include <sstream>
#include <stdexcept>

#include "core/integer.h"

namespace upcycle::cluster {
namespace {

// squeue -o "%A|%F|%k", squeue -O "F:|,..." and sacct -P print '|'-separated fields.
std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> f;
  std::istringstream in(line);
  for (std::string x; std::getline(in, x, '|');) f.push_back(x);
  return f;
}

}  // namespace

core::JobStatus status_of(const std::string& s) {
  using core::JobStatus;
  static const std::set<std::string> kQueued = {"PENDING",     "CONFIGURING",  "REQUEUED",
                                                "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
                                                "SUSPENDED",   "RESV_DEL_HOLD"};
  static const std::set<std::string> kRunning = {"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT"};
  if (kQueued.count(s)) return JobStatus::kQueued;
  if (kRunning.count(s)) return JobStatus::kRunning;
  if (s == "PREEMPTED") return JobStatus::kPreempted;
  if (s == "COMPLETED") return JobStatus::kDone;
  if (s.rfind("CANCELLED", 0) == 0) return JobStatus::kCancelled;
  return JobStatus::kFailed;
}

bool reason_never_clears(const std::string& reason) {
  static const std::set<std::string> kNever = {"PartitionTimeLimit",
                                               "PartitionNodeLimit",
                                               "PartitionConfig",
                                               "ReqNodeNotAvail",
                                               "InvalidAccount",
                                               "InvalidQOS",
                                               "BadConstraints",
                                               "QOSMaxWallDurationPerJobLimit",
                                               "AssocMaxWallDurationPerJobLimit",
                                               "QOSMaxNodePerJobLimit",
                                               "AssocMaxNodesPerJobLimit",
                                               "AccountNotAllowed",
                                               "QOSNotAllowed",
                                               "PartitionDown",
                                               "PartitionInactive"};
  return kNever.count(reason.substr(0, reason.find_first_of(", "))) > 0;
}

int slurm_int(const std::string& text, int fallback) {
  try {
    return static_cast<int>(
        core::parse_integer(text.substr(0, text.find(':')), core::kIntRange, false));
  } catch (const std::logic_error&) {
    return fallback;
  }
}

bool array_task_in(const std::string& spec, int task) {
  std::string s = spec.substr(0, spec.find('%'));
  if (!s.empty() && s.front() == '[')
    s = s.substr(1, s.find(']') - 1);  // a pending array: "[0-3%2]"
  std::istringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    size_t dash = part.find('-');
    const int lo = slurm_int(part.substr(0, dash), -1);
    const int hi = dash == std::string::npos ? lo : slurm_int(part.substr(dash + 1), -1);
    if (lo >= 0 && task >= lo && task <= hi) return true;
  }
  return false;
}

// Values hold no spaces except in fields we do not read (Command=, WorkDir= can; they come after
// the ones we need or are ignored).
std::map<std::string, std::string> scontrol_fields(const std::string& line) {
  std::map<std::string, std::string> f;
  std::istringstream in(line);
  std::string tok;
  while (in >> tok) {
    size_t eq = tok.find('=');
    if (eq != std::string::npos && !f.count(tok.substr(0, eq)))
      f[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return f;
}

std::map<std::string, SlurmStatus> squeue_statuses(const std::string& out,
                                                   const std::vector<std::string>& ids) {
  struct Line {
    std::string job;    ///< "42"
    std::string tasks;  ///< "" (not an array), "3", or "[0-3%1]" (pending tasks)
    SlurmStatus status;
  };
  std::vector<Line> lines;
  std::istringstream in(out);
  for (std::string text; std::getline(in, text);) {
    const std::vector<std::string> f = split_fields(text);
    if (f.size() < 5 || f[0].empty()) continue;
    Line l;
    const size_t us = f[0].find('_');
    l.job = f[0].substr(0, us);
    l.tasks = us == std::string::npos ? "" : f[0].substr(us + 1);
    l.status.known = true;
    l.status.raw = f[1];
    l.status.status = status_of(f[1]);
    l.status.reason = f[2] == "None" ? "" : f[2];
    // squeue prints the raw wait status (256 for exit 1, 9 for SIGKILL); "E:S" elsewhere.
    const int raw = slurm_int(f[3], 0);
    l.status.exit_code = f[3].find(':') != std::string::npos ? raw
                         : (raw & 0x7f) == 0                 ? (raw >> 8) & 0xff
                                                             : 128 + (raw & 0x7f);
    l.status.restarts = slurm_int(f[4], 0);
    lines.push_back(std::move(l));
  }
  std::map<std::string, SlurmStatus> found;
  for (const auto& id : ids) {
    const size_t us = id.find('_');
    const std::string job = id.substr(0, us);
    const int task = us == std::string::npos ? -1 : slurm_int(id.substr(us + 1), -1);
    for (const auto& l : lines) {
      const bool hit =
          l.job == job &&
          (task < 0 ? l.tasks.empty() : !l.tasks.empty() && array_task_in(l.tasks, task));
      if (hit) {
        found[id] = l.status;
        break;
      }
    }
  }
  return found;
}

std::map<std::string, SlurmStatus> sacct_statuses(const std::string& out) {
  std::map<std::string, SlurmStatus> found;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    const std::vector<std::string> f = split_fields(line);
    if (f.size() < 3 || f[0].empty()) continue;
    SlurmStatus s;
    s.known = true;
    s.raw = f[1].substr(0, f[1].find(' '));  // "CANCELLED by 0"
    s.status = status_of(s.raw);
    s.exit_code = slurm_int(f[2], 0);
    found[f[0]] = s;
  }
  return found;
}

std::string sbatch_job_id(const std::string& out) {
  const std::string id = out.substr(0, out.find_first_of(";\n"));
  return slurm_int(id, -1) >= 0 ? id : "";
}

std::optional<std::string> squeue_job_with_comment(const std::string& out,
                                                   const std::string& comment) {
  std::optional<std::string> latest;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    // %A job id, %F array job id (= the job id when not an array), %k the comment.
    const std::vector<std::string> f = split_fields(line);
    if (f.size() != 3 || f[2] != comment) continue;
    if (!latest || slurm_int(f[1], -1) > slurm_int(*latest, -1)) latest = f[1];
  }
  return latest;
}

}  // namespace upcycle::cluster
