#include "runner/run_support.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <string.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/host.h"
#include "core/job_files.h"
#include "core/log.h"
#include "core/provenance.h"
#include "core/sha256.h"
#include "runner/recipe.h"

namespace upcycle::runner {
namespace {

// The flat recipe without the keys that only say where and how it runs: what a run is.
std::map<std::string, std::string> identity_of(const std::map<std::string, std::string>& flat) {
  std::map<std::string, std::string> out;
  for (const auto& [k, v] : flat) {
    if (!is_execution_key(k)) out.emplace(k, v);
  }
  return out;
}

// sha256 of the identity without the seed: the runs that may pool as seeds of one configuration.
std::string seed_group_of(const Recipe& r) {
  std::string text;
  for (const auto& [k, v] : identity_of(r.flat)) {
    if (k != "seed") text += k + "=" + v + "\n";
  }
  return core::sha256_hex(text);
}

// "key: old -> new" for the first few keys that differ, "" when none does.
std::string identity_diff(const std::map<std::string, std::string>& old_params,
                          const std::map<std::string, std::string>& now) {
  const auto a = identity_of(old_params), b = identity_of(now);
  std::vector<std::string> diffs;
  for (const auto& [k, v] : b) {
    auto it = a.find(k);
    if (it == a.end())
      diffs.push_back(k + ": (unset) -> " + v);
    else if (it->second != v)
      diffs.push_back(k + ": " + it->second + " -> " + v);
  }
  for (const auto& [k, v] : a) {
    if (!b.count(k)) diffs.push_back(k + ": " + v + " -> (unset)");
  }
  std::string out;
  for (size_t i = 0; i < diffs.size() && i < 5; ++i) out += (i ? "; " : "") + diffs[i];
  if (diffs.size() > 5) out += "; and " + std::to_string(diffs.size() - 5) + " more";
  return out;
}

// A run name is one recipe: a second recipe under a taken name would be pooled with the first by
// every table and picked by `export`. Refused before anything is written, with what differs.
// Returns the key of the run already registered under this name, which a re-run (new code, other
// threads) keeps.
std::optional<std::string> existing_run_key(tracking::Store& store, const RunPoint& p) {
  auto runs = store.select("SELECT CAST(id AS TEXT), key FROM runs WHERE name = ? ORDER BY id DESC",
                           {p.recipe.run_name});
  for (const auto& row : runs.rows) {
    std::map<std::string, std::string> old;
    for (const auto& kv :
         store.select("SELECT key, value FROM params WHERE run_id = ?", {tracking::text_of(row[0])})
             .rows) {
      old[tracking::text_of(kv[0])] = tracking::text_of(kv[1]);
    }
    if (const std::string diff = identity_diff(old, p.recipe.flat); !diff.empty()) {
      throw ConfigError("run '" + p.recipe.run_name + "' is already in " + store.path() +
                            " with another recipe (" + diff + ")",
                        "a run name is one recipe: name this one apart (name=" + p.recipe.name +
                            "-2 on the command line), or vary it in a sweep:");
    }
  }
  if (runs.rows.empty()) return std::nullopt;
  return tracking::text_of(runs.rows[0][1]);
}

// Registers one run (a recipe at one sweep point) with its params and provenance; returns its id.
// A run is its resolved recipe and what its jobs compute (their keys), not the code's version.
int64_t register_run(tracking::Store& store, const RunPoint& p,
                     const std::optional<std::string>& existing_key) {
  std::string keys;
  for (const auto& j : p.plan.jobs) keys += j.key + "\n";
  tracking::RunInfo info{existing_key.value_or(core::sha256_hex(p.recipe.resolved_yaml + keys)),
                         p.recipe.name, p.recipe.run_name, p.recipe.sweep_point,
                         seed_group_of(p.recipe)};
  int64_t run_id = store.upsert_run(info);
  store.record_params(run_id, p.recipe.flat);
  for (const auto& j : p.plan.jobs) {
    store.upsert_job(run_id, {0, j.key, j.stage, j.kind, core::JobStatus::kPending, 0, std::nullopt,
                              j.dir, "", "", "", j.keyed.dump(), j.shape});
  }
  return run_id;
}

}  // namespace

std::string describe_exit(int code) {
  if (code <= 128 || code >= 128 + 65) return "exit " + std::to_string(code);
  const int sig = code - 128;
  const char* name = sigabbrev_np(sig);
  return "killed by signal " + std::to_string(sig) +
         (name ? std::string(" (SIG") + name + ")" : "");
}

std::string tail_of_log(const std::string& dir, size_t lines) {
  std::string text;
  try {
    text = core::read_file(dir + "/" + core::kLogFile);
  } catch (const Error&) {
    return "";
  }
  size_t pos = text.size();
  for (size_t n = 0; n <= lines && pos != std::string::npos && pos > 0; ++n)
    pos = text.rfind('\n', pos - 1);
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
  store.set_job_status(key, core::JobStatus::kDone, 0,
                       "a forced re-run failed; the previous results stay");
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
  tracking::Provenance prov{code.git_sha,
                            code.git_dirty,
                            core::sha256_hex(p.recipe.resolved_yaml),
                            p.recipe.resolved_yaml,
                            "",
                            "",
                            "cpu",
                            core::host_name(),
                            code.binary_sha256};
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

namespace {

// The runner lock is an open-file-description lock on one byte of the store file itself, so every
// path to the store (a symlink, a hard link, "./runs/../runs/store.sqlite") reaches the same lock:
// it belongs to the file's device and inode. The byte lies far past SQLite's own lock bytes (from
// 2^30), and OFD locks neither conflict with SQLite's POSIX locks on other bytes nor vanish when
// SQLite closes a descriptor. The kernel releases it however the holder dies.
constexpr off_t kRunnerLockByte = off_t(1) << 62;

// A path that may become a store: absent, empty, or a regular file that starts as SQLite files do.
void check_is_store(const std::string& path) {
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (ec || st.type() == std::filesystem::file_type::not_found) return;
  if (st.type() != std::filesystem::file_type::regular) {
    throw StoreError(path + ": not a store (not a regular file)",
                     "give a path to a .sqlite file, or a new one");
  }
  static const std::string kMagic("SQLite format 3\0", 16);
  char buf[16] = {0};
  std::ifstream in(path, std::ios::binary);  // a regular file: no blocking open
  in.read(buf, sizeof(buf));
  const std::string head(buf, static_cast<size_t>(in.gcount()));
  if (!head.empty() && head != kMagic) {
    throw StoreError(path + ": not a store (not an SQLite database)",
                     "give a path to a .sqlite file, or a new one");
  }
}

}  // namespace

RunnerLock::RunnerLock(const std::string& store_path) : path_(store_path + ".lock") {
  check_is_store(store_path);
  const std::string dir = std::filesystem::path(store_path).parent_path().string();
  if (!dir.empty()) core::make_dirs(dir);
  fd_ = ::open(store_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw StoreError(store_path + ": cannot open the store to lock it: " + std::strerror(errno));
  struct flock fl {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = kRunnerLockByte;
  fl.l_len = 1;
  if (::fcntl(fd_, F_OFD_SETLK, &fl) != 0) {
    const int err = errno;
    std::string
        holder;  // the holder writes who it is just after it takes the lock: give it a moment to
    for (int i = 0; i < 50 && holder.empty() && (err == EAGAIN || err == EACCES); ++i) {
      try {
        holder = core::read_file(path_, 4096);
      } catch (const Error&) {
      }
      if (holder.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ::close(fd_);
    if (err != EAGAIN && err != EACCES) {
      throw StoreError(store_path + ": cannot lock the store: " + std::strerror(err));
    }
    throw StoreError(store_path + ": another upcycle runner is using this store" +
                         (holder.empty() ? "" : " (" + holder + ")"),
                     "wait for it to finish, or stop it with Ctrl-C and `upcycle resume`");
  }
  // Who holds it, for the message above: beside this path to the store (removed on exit).
  try {
    core::write_file_atomic(path_,
                            "pid " + std::to_string(::getpid()) + " on " + core::host_name());
  } catch (const Error&) {
    path_.clear();  // a note only: the lock holds without it
  }
}

RunnerLock::~RunnerLock() {
  if (!path_.empty()) ::unlink(path_.c_str());
  ::close(fd_);  // after every Store on this file is closed (callers declare the lock first)
}

std::vector<int64_t> register_runs(tracking::Store& store, const std::vector<RunPoint>& points,
                                   const RunOptions& options, RunSummary& summary) {
  std::vector<std::optional<std::string>> existing;
  for (const auto& p : points)
    existing.push_back(existing_run_key(store, p));  // all before any is written
  std::vector<int64_t> run_ids;
  for (size_t i = 0; i < points.size(); ++i) {
    const RunPoint& p = points[i];
    run_ids.push_back(register_run(store, p, existing[i]));
    store.record_provenance(run_ids.back(), provenance_of(p));
    summary.run_names.push_back(p.recipe.run_name);
    if (!options.tags.empty()) store.set_run_tags(p.recipe.run_name, options.tags);
  }
  return run_ids;
}

std::vector<core::JobStatus> classify_jobs(const Plan& plan, tracking::Store& store,
                                           const std::set<size_t>& forced, RunSummary& summary) {
  std::vector<core::JobStatus> fate(plan.jobs.size(), core::JobStatus::kPending);
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const auto& j = plan.jobs[i];
    if (forced.count(i)) {
      set_aside(j);  // the old results stay until the new attempt succeeds
      continue;
    }
    // A forced re-run that was killed left the old results aside: this runner holds the store's
    // lock, so nobody is finishing it; the old results come back.
    if (restore_replaced(store, j.key, j.dir))
      core::log_warn(j.stage + ": an interrupted forced re-run; the previous results stay");
    auto result = core::read_job_result(j.dir);
    if (result && result->status == "done" && result->key == j.key) {
      auto row = store.find_job(j.key);
      if (!row || row->status != core::JobStatus::kDone) store.ingest_job(j.key, j.dir, *result);
      fate[i] = core::JobStatus::kDone;
      ++summary.skipped;
      core::log_info(j.stage + ": complete (key " + j.key.substr(0, 12) + "), skipped");
    }
  }
  return fate;
}

void set_run_statuses(tracking::Store& store, const std::vector<RunPoint>& points,
                      const std::vector<int64_t>& ids,
                      const std::function<core::JobStatus(const std::string&)>& fate_of,
                      bool finished, bool interrupted) {
  for (size_t r = 0; r < points.size(); ++r) {
    bool failed = false, pending = false;
    for (const auto& j : points[r].plan.jobs) {
      failed = failed || fate_of(j.key) == core::JobStatus::kFailed;
      pending = pending || fate_of(j.key) != core::JobStatus::kDone;
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
