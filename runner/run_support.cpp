#include "runner/run_support.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string.h>
#include <chrono>
#include <filesystem>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/host.h"
#include "core/job_files.h"
#include "core/log.h"
#include "core/provenance.h"
#include "core/sha256.h"

namespace upcycle::runner {
namespace {

// Registers one run (a recipe at one sweep point) with its params and provenance; returns its id.
// A run is its resolved recipe and what its jobs compute (their keys), not the code's version.
int64_t register_run(tracking::Store& store, const RunPoint& p) {
  std::string keys;
  for (const auto& j : p.plan.jobs) keys += j.key + "\n";
  tracking::RunInfo info{core::sha256_hex(p.recipe.resolved_yaml + keys), p.recipe.name, p.recipe.run_name,
                         p.recipe.sweep_point};
  int64_t run_id = store.upsert_run(info);
  store.record_params(run_id, p.recipe.flat);
  for (const auto& j : p.plan.jobs) {
    store.upsert_job(run_id, {0, j.key, j.stage, j.kind, "", 0, std::nullopt, j.dir, "", "", "",
                              j.keyed.dump(), j.shape});
  }
  return run_id;
}

}  // namespace

std::string describe_exit(int code) {
  if (code <= 128 || code >= 128 + 65) return "exit " + std::to_string(code);
  const int sig = code - 128;
  const char* name = sigabbrev_np(sig);
  return "killed by signal " + std::to_string(sig) + (name ? std::string(" (SIG") + name + ")" : "");
}

std::string tail_of_log(const std::string& dir, size_t lines) {
  std::string text;
  try {
    text = core::read_file(dir + "/" + core::kLogFile);
  } catch (const Error&) {
    return "";
  }
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos != std::string::npos && pos > 0; ++n) pos = text.rfind('\n', pos - 1);
  return (pos == std::string::npos || pos == 0) ? text : text.substr(pos + 1);
}

// Before a forced re-run: the job starts from nothing, in its directory and in the store.
std::string replaced_dir(const std::string& dir) { return dir + ".replaced"; }

void set_aside(const PlannedJob& j) {
  std::error_code ec;
  std::filesystem::remove_all(replaced_dir(j.dir), ec);  // from a forced re-run that never ended
  if (std::filesystem::exists(j.dir)) std::filesystem::rename(j.dir, replaced_dir(j.dir));
}

void replace_results(tracking::Store& store, const std::string& key, const std::string& dir) {
  if (!std::filesystem::exists(replaced_dir(dir))) return;
  store.reset_job(key);  // the old attempt's rows go only now that the new one succeeded
  std::error_code ec;
  std::filesystem::remove_all(replaced_dir(dir), ec);
}

bool restore_replaced(tracking::Store& store, const std::string& key, const std::string& dir) {
  if (!std::filesystem::exists(replaced_dir(dir))) return false;
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);
  std::filesystem::rename(replaced_dir(dir), dir);
  auto result = core::read_job_result(dir);
  if (!result || result->status != "done") return false;  // there was nothing complete to keep
  store.set_job_status(key, "done", 0, "a forced re-run failed; the previous results stay");
  return true;
}

// Jobs of forced stages and everything downstream of them.
std::set<size_t> forced_jobs(const Plan& plan, const std::vector<std::string>& force) {
  std::set<size_t> out;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& j = plan.jobs[i];
    bool hit = std::find(force.begin(), force.end(), j.stage_name) != force.end() ||
               std::find(force.begin(), force.end(), j.stage) != force.end();
    for (size_t d : j.deps) hit = hit || out.count(d);
    if (hit) out.insert(i);
  }
  return out;
}

// Provenance the runner knows, completed with what only the jobs know: the data manifest, LibTorch
// version and device.
tracking::Provenance provenance_of(const RunPoint& p) {
  const core::CodeVersion& code = core::this_code();
  tracking::Provenance prov{code.git_sha, code.git_dirty, core::sha256_hex(p.recipe.resolved_yaml),
                            p.recipe.resolved_yaml, "", "", "cpu", core::host_name(), code.binary_sha256};
  for (const auto& j : p.plan.jobs) {
    auto result = core::read_job_result(j.dir);
    if (!result) continue;
    if (prov.torch_version.empty() && !result->torch_version.empty()) {
      prov.torch_version = result->torch_version;
      prov.device = result->device;
    }
    auto m = result->outputs.find("manifest_sha256");
    if (m != result->outputs.end()) prov.data_manifest_sha256 = m->second;
  }
  return prov;
}

RunnerLock::RunnerLock(const std::string& store_path) : path_(store_path + ".lock") {
  const std::string dir = std::filesystem::path(store_path).parent_path().string();
  if (!dir.empty()) core::make_dirs(dir);
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw StoreError(path_ + ": cannot open the runner lock: " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    // The holder writes who it is just after it takes the lock: give it a moment to.
    std::string holder;
    for (int i = 0; i < 50 && holder.empty(); ++i) {
      try {
        holder = core::read_file(path_);
      } catch (const Error&) {
      }
      if (holder.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::close(fd_);
    throw StoreError(store_path + ": another upcycle runner is using this store" +
                         (holder.empty() ? "" : " (" + holder + ")"),
                     "wait for it to finish, or stop it with Ctrl-C and `upcycle resume`");
  }
  std::string me = "pid " + std::to_string(::getpid()) + " on " + core::host_name();
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, me.data(), me.size(), 0);
}

RunnerLock::~RunnerLock() { ::close(fd_); }

std::vector<int64_t> register_runs(tracking::Store& store, const std::vector<RunPoint>& points,
                                   const RunOptions& options, RunSummary& summary) {
  std::vector<int64_t> run_ids;
  for (const auto& p : points) {
    run_ids.push_back(register_run(store, p));
    store.record_provenance(run_ids.back(), provenance_of(p));
    summary.run_names.push_back(p.recipe.run_name);
    if (!options.tags.empty()) store.set_run_tags(p.recipe.run_name, options.tags);
  }
  return run_ids;
}

std::vector<JobFate> classify_jobs(const Plan& plan, tracking::Store& store, const std::set<size_t>& forced,
                                   RunSummary& summary) {
  std::vector<JobFate> fate(plan.jobs.size(), JobFate::kPending);
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& j = plan.jobs[i];
    if (forced.count(i)) {
      set_aside(j);  // the old results stay until the new attempt succeeds
      continue;
    }
    auto result = core::read_job_result(j.dir);
    if (result && result->status == "done" && result->key == j.key) {
      auto row = store.find_job(j.key);
      if (!row || row->status != "done") store.ingest_job(j.key, j.dir, *result);
      fate[i] = JobFate::kDone;
      ++summary.skipped;
      core::log_info(j.stage + ": complete (key " + j.key.substr(0, 12) + "), skipped");
    }
  }
  return fate;
}

void set_run_statuses(tracking::Store& store, const std::vector<RunPoint>& points, const std::vector<int64_t>& ids,
                      const std::function<JobFate(const std::string&)>& fate_of, bool finished, bool interrupted) {
  for (size_t r = 0; r < points.size(); ++r) {
    bool failed = false, pending = false;
    for (const auto& j : points[r].plan.jobs) {
      failed = failed || fate_of(j.key) == JobFate::kFailed;
      pending = pending || fate_of(j.key) != JobFate::kDone;
    }
    if (!finished) {
      if (pending) store.set_run_status(ids[r], "running");
      continue;
    }
    store.record_provenance(ids[r], provenance_of(points[r]));
    store.set_run_status(ids[r], interrupted ? "interrupted" : failed ? "failed" : "done");
  }
}

tracking::Store open_store_for_writing(const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  if (!dir.empty()) core::make_dirs(dir);
  return tracking::Store(path);
}

}  // namespace upcycle::runner
