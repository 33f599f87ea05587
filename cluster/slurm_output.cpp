#include "cluster/slurm_output.h"

#include <set>
#include <sstream>
#include <stdexcept>

#include "core/integer.h"

namespace upcycle::cluster {
namespace {

// squeue -o "%A|%F|%k" and sacct -P print '|'-separated fields.
std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> f;
  std::istringstream in(line);
  for (std::string x; std::getline(in, x, '|');) f.push_back(x);
  return f;
}

SlurmStatus status_from(const std::map<std::string, std::string>& f) {
  SlurmStatus s;
  s.raw = f.count("JobState") ? f.at("JobState") : "UNKNOWN";
  s.state = state_of(s.raw);
  s.reason = f.count("Reason") ? f.at("Reason") : "";
  if (f.count("ExitCode")) s.exit_code = slurm_int(f.at("ExitCode"), 0);
  if (f.count("Restarts")) s.restarts = slurm_int(f.at("Restarts"), 0);
  return s;
}

}  // namespace

SlurmState state_of(const std::string& s) {
  static const std::set<std::string> kActive = {
      "PENDING",     "CONFIGURING",  "RUNNING",      "COMPLETING", "REQUEUED",
      "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",     "SUSPENDED",  "PREEMPTED",
      "SIGNALING",   "STAGE_OUT",    "RESV_DEL_HOLD"};
  if (kActive.count(s)) return SlurmState::kActive;
  if (s == "COMPLETED") return SlurmState::kDone;
  if (s.rfind("CANCELLED", 0) == 0) return SlurmState::kCancelled;
  return SlurmState::kFailed;
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

std::map<std::string, SlurmStatus> scontrol_statuses(const std::string& out,
                                                     const std::vector<std::string>& ids) {
  std::vector<std::map<std::string, std::string>> records;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("JobId=", 0) == 0) records.push_back(scontrol_fields(line));
  }
  std::map<std::string, SlurmStatus> found;
  for (const auto& id : ids) {
    const size_t us = id.find('_');
    const std::string job = id.substr(0, us);
    const int task = us == std::string::npos ? -1 : slurm_int(id.substr(us + 1), -1);
    for (const auto& f : records) {
      const bool array = f.count("ArrayJobId") && f.count("ArrayTaskId");
      const bool hit =
          task < 0 ? f.at("JobId") == job
                   : array && f.at("ArrayJobId") == job && array_task_in(f.at("ArrayTaskId"), task);
      if (hit) {
        found[id] = status_from(f);
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
    s.raw = f[1].substr(0, f[1].find(' '));  // "CANCELLED by 0"
    s.state = state_of(s.raw);
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
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    // %A job id, %F array job id (= the job id when not an array), %k the comment.
    const std::vector<std::string> f = split_fields(line);
    if (f.size() == 3 && f[2] == comment) return f[1];
  }
  return std::nullopt;
}

}  // namespace upcycle::cluster
