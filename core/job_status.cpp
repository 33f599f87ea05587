#include "core/job_status.h"

#include <array>
#include <utility>

namespace upcycle::core {
namespace {

constexpr std::array<std::pair<JobStatus, const char*>, 8> kNames = {{
    {JobStatus::kPending, "pending"},
    {JobStatus::kSubmitting, "submitting"},
    {JobStatus::kQueued, "queued"},
    {JobStatus::kRunning, "running"},
    {JobStatus::kDone, "done"},
    {JobStatus::kFailed, "failed"},
    {JobStatus::kPreempted, "preempted"},
    {JobStatus::kCancelled, "cancelled"},
}};

}  // namespace

const char* to_string(JobStatus s) {
  for (const auto& [status, name] : kNames) {
    if (status == s) return name;
  }
  return "unknown";
}

std::optional<JobStatus> parse_job_status(const std::string& text) {
  for (const auto& [status, name] : kNames) {
    if (text == name) return status;
  }
  return std::nullopt;
}

bool is_active(JobStatus s) {
  return s == JobStatus::kPending || s == JobStatus::kSubmitting || s == JobStatus::kQueued ||
         s == JobStatus::kRunning || s == JobStatus::kPreempted;
}

const std::string& active_statuses_sql() {
  static const std::string kSql = [] {
    std::string list;
    for (const auto& [status, name] : kNames) {
      if (is_active(status)) list += std::string(list.empty() ? "" : ", ") + "'" + name + "'";
    }
    return "(" + list + ")";
  }();
  return kSql;
}

}  // namespace upcycle::core
