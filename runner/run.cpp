#include "runner/run.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <set>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/host.h"
#include "core/job_files.h"
#include "core/log.h"
#include "core/provenance.h"
#include "core/sha256.h"
#include "stages/train/device.h"
#include "tracking/store.h"

namespace upcycle::runner {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;
void on_interrupt(int) { g_interrupted = 1; }

// SIGINT/SIGTERM set a flag (no SA_RESTART, so waitpid returns EINTR and the loop sees it).
void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

std::string tail_of_log(const std::string& dir, size_t lines = 8) {
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
void reset_job(tracking::Store& store, const PlannedJob& j) {
  std::error_code ec;
  std::filesystem::remove_all(j.dir, ec);
  store.reset_job(j.key);
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
                              j.keyed.dump()});
  }
  return run_id;
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

// One runner per store at a time: a second `run` or `resume` while one is active would launch the
// same jobs twice. flock is released by the kernel however the holder dies (kill -9 included).
class RunnerLock {
 public:
  explicit RunnerLock(const std::string& store_path) : path_(store_path + ".lock") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw StoreError(path_ + ": cannot open the runner lock: " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      std::string holder;
      try {
        holder = core::read_file(path_);
      } catch (const Error&) {
      }
      ::close(fd_);
      throw StoreError(store_path + ": another upcycle runner is using this store" +
                           (holder.empty() ? "" : " (" + holder + ")"),
                       "wait for it to finish, or stop it with Ctrl-C and `upcycle resume`");
    }
    std::string me = "pid " + std::to_string(::getpid()) + " on " + core::host_name();
    if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, me.data(), me.size(), 0);
  }
  ~RunnerLock() { ::close(fd_); }
  RunnerLock(const RunnerLock&) = delete;
  RunnerLock& operator=(const RunnerLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

PlanOptions local_plan_options() { return {stages::cuda_available()}; }

Plan merge_plans(const std::vector<RunPoint>& points) {
  Plan merged;
  std::map<std::string, size_t> index;
  for (const auto& p : points) {
    for (const auto& j : p.plan.jobs) {
      if (index.count(j.key)) continue;  // equal content key: one job serves every run
      PlannedJob copy = j;
      copy.deps.clear();
      for (size_t d : j.deps) copy.deps.push_back(index.at(p.plan.jobs[d].key));
      index[j.key] = merged.jobs.size();
      merged.jobs.push_back(std::move(copy));
    }
  }
  return merged;
}

namespace {

enum class S { kPending, kRunning, kDone, kFailed };

// The union plan's jobs as the runner tracks them, and the two moves of its loop: start what is
// ready, take in what finished. Any executor that reports JobEvents can drive it.
class Scheduler {
 public:
  Scheduler(const Plan& plan, tracking::Store& store, cluster::Executor& executor, const RunOptions& options,
            int max_parallel, RunSummary& summary)
      : plan_(plan), store_(store), executor_(executor), options_(options), max_parallel_(max_parallel),
        summary_(summary), state_(plan.jobs.size(), S::kPending), attempts_(plan.jobs.size(), 0) {
    for (size_t i = 0; i < plan.jobs.size(); ++i) by_key_[plan.jobs[i].key] = i;
  }

  S state_of(const std::string& key) const { return state_.at(by_key_.at(key)); }

  // Forced jobs start from nothing; jobs whose result is complete are skipped (and ingested if a
  // runner died between the job finishing and the ingest).
  void classify(const std::set<size_t>& forced) {
    for (size_t i = 0; i < plan_.jobs.size(); ++i) {
      const auto& j = plan_.jobs[i];
      if (forced.count(i)) {
        reset_job(store_, j);
        continue;
      }
      auto result = core::read_job_result(j.dir);
      if (result && result->status == "done" && result->key == j.key) {
        auto row = store_.find_job(j.key);
        if (!row || row->status != "done") store_.ingest_job(j.key, j.dir, *result);
        state_[i] = S::kDone;
        ++summary_.skipped;
        core::log_info(j.stage + ": complete (key " + j.key.substr(0, 12) + "), skipped");
      }
    }
  }

  // Runs until nothing is running and nothing more can start (done, failed or interrupted).
  void loop() {
    install_interrupt_handlers();
    while (true) {
      if (!g_interrupted) start_ready();
      if (executor_.running() == 0) break;
      if (g_interrupted && !summary_.interrupted) {
        summary_.interrupted = true;
        core::log_warn("interrupted: asking running jobs to checkpoint and stop");
        executor_.terminate_all();
      }
      for (const auto& ev : executor_.wait_any()) finished(ev);
    }
  }

 private:
  // Jobs start while their threads fit in the machine's cores (a job wider than the machine runs
  // alone); -j / max_parallel caps the number of jobs instead.
  bool fits(size_t i) const {
    if (executor_.running() == 0) return true;
    if (max_parallel_ > 0) return executor_.running() < max_parallel_;
    const int cores = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    return threads_in_use_ + plan_.jobs[i].threads * plan_.jobs[i].processes <= cores;
  }

  void start_ready() {
    for (size_t i = 0; i < plan_.jobs.size(); ++i) {
      if (state_[i] != S::kPending) continue;
      bool ready = true, blocked = false;
      for (size_t d : plan_.jobs[i].deps) {
        ready = ready && state_[d] == S::kDone;
        blocked = blocked || state_[d] == S::kFailed;
      }
      if (blocked) {
        fail(i, std::nullopt, "an input job failed");
        core::log_error(plan_.jobs[i].stage + ": not run, an input failed");
        i = static_cast<size_t>(-1);  // rescan: dependents of this one are blocked too
        continue;
      }
      if (ready && fits(i)) launch(i);
    }
  }

  void launch(size_t i) {
    const auto& j = plan_.jobs[i];
    core::make_dirs(j.dir);
    core::write_file_atomic(j.dir + "/" + core::kSpecFile, j.spec.dump(2) + "\n");
    std::string t = std::to_string(j.threads);
    cluster::JobLaunch l{j.key, j.dir, {options_.self_exe, "stage", "--spec", j.dir + "/" + core::kSpecFile},
                         {{"OMP_NUM_THREADS", t}, {"OPENBLAS_NUM_THREADS", t}, {"MKL_NUM_THREADS", t}},
                         j.processes};
    std::string id = executor_.submit(l);
    store_.set_job_status(j.key, "running", std::nullopt, "", id);
    state_[i] = S::kRunning;
    threads_in_use_ += j.threads * j.processes;
    ++attempts_[i];
    started_[j.key] = std::chrono::steady_clock::now();
    core::log_info(j.stage + ": started (" + j.kind + ", attempt " + std::to_string(attempts_[i]) + ", log " +
                   j.dir + "/" + core::kLogFile + ")");
  }

  void fail(size_t i, std::optional<int> exit_code, const std::string& why) {
    state_[i] = S::kFailed;
    ++summary_.failed;
    store_.set_job_status(plan_.jobs[i].key, "failed", exit_code, why);
  }

  void finished(const cluster::JobEvent& ev) {
    const size_t i = by_key_.at(ev.key);
    const auto& j = plan_.jobs[i];
    threads_in_use_ -= j.threads * j.processes;
    if (ev.state == cluster::JobState::kDone) return ingest(i, ev.exit_code);
    if (ev.state == cluster::JobState::kPreempted && !summary_.interrupted) {
      store_.set_job_status(j.key, "pending", ev.exit_code, "preempted; requeued");
      state_[i] = S::kPending;  // requeue; does not count as a failed attempt
      --attempts_[i];
    } else if (summary_.interrupted) {
      store_.set_job_status(j.key, "preempted", ev.exit_code, "interrupted by the user");
      state_[i] = S::kPending;
    } else if (attempts_[i] <= j.retries) {
      core::log_warn(j.stage + ": failed (exit " + std::to_string(ev.exit_code) + "), retrying");
      // A retry resumes from the job's last checkpoint, like a requeue after preemption.
      store_.set_job_status(j.key, "pending", ev.exit_code, "failed; retrying");
      state_[i] = S::kPending;
    } else {
      std::string tail = tail_of_log(j.dir);
      fail(i, ev.exit_code, tail);
      core::log_error(j.stage + ": failed (exit " + std::to_string(ev.exit_code) + "); end of " + j.dir + "/" +
                      core::kLogFile + ":\n" + tail);
    }
  }

  void ingest(size_t i, int exit_code) {
    const auto& j = plan_.jobs[i];
    auto result = core::read_job_result(j.dir);
    if (!result || result->status != "done") return fail(i, exit_code, "exited 0 without result.json");
    store_.ingest_job(j.key, j.dir, *result);
    store_.set_job_status(j.key, "done", exit_code);
    state_[i] = S::kDone;
    ++summary_.done;
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.1f",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - started_[j.key]).count());
    core::log_info(j.stage + ": done in " + buf + " s");
  }

  const Plan& plan_;
  tracking::Store& store_;
  cluster::Executor& executor_;
  const RunOptions& options_;
  const int max_parallel_;
  RunSummary& summary_;
  std::vector<S> state_;
  std::vector<int> attempts_;
  std::map<std::string, size_t> by_key_;
  std::map<std::string, std::chrono::steady_clock::time_point> started_;
  int threads_in_use_ = 0;
};

// Registers every run with its provenance; a run with nothing left to do is not touched otherwise.
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

// Each run's status follows its own jobs.
void set_run_statuses(tracking::Store& store, const std::vector<RunPoint>& points, const std::vector<int64_t>& ids,
                      const Scheduler& sched, bool finished, bool interrupted) {
  for (size_t r = 0; r < points.size(); ++r) {
    bool failed = false, pending = false;
    for (const auto& j : points[r].plan.jobs) {
      failed = failed || sched.state_of(j.key) == S::kFailed;
      pending = pending || sched.state_of(j.key) != S::kDone;
    }
    if (!finished) {
      if (pending) store.set_run_status(ids[r], "running");
      continue;
    }
    store.record_provenance(ids[r], provenance_of(points[r]));
    store.set_run_status(ids[r], interrupted ? "interrupted" : failed ? "failed" : "done");
  }
}

}  // namespace

RunSummary execute_runs(const std::vector<RunPoint>& points, const RunOptions& options,
                        cluster::Executor& executor) {
  if (points.empty()) throw InternalError("execute_runs: no runs");
  const Recipe& recipe = points[0].recipe;  // store, root and max_parallel are not sweepable
  const Plan plan = merge_plans(points);
  for (const auto& f : options.force) {
    if (!recipe.find_stage(f) && !plan.find(f)) throw ConfigError("--force: unknown stage '" + f + "'");
  }
  std::string store_dir = std::filesystem::path(recipe.store).parent_path().string();
  if (!store_dir.empty()) core::make_dirs(store_dir);
  RunnerLock lock(recipe.store);
  tracking::Store store(recipe.store);

  RunSummary summary;
  const std::vector<int64_t> run_ids = register_runs(store, points, options, summary);
  Scheduler sched(plan, store, executor, options,
                  options.max_parallel > 0 ? options.max_parallel : recipe.max_parallel, summary);
  sched.classify(forced_jobs(plan, options.force));
  set_run_statuses(store, points, run_ids, sched, false, false);
  sched.loop();
  set_run_statuses(store, points, run_ids, sched, true, summary.interrupted);
  return summary;
}

}  // namespace upcycle::runner
