#include "runner/run.h"

#include "runner/progress.h"
#include "runner/run_support.h"

#include <signal.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <set>
#include <thread>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/log.h"
#include "runner/job_binary.h"
#include "runner/ledger.h"
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

}  // namespace

PlanOptions local_plan_options() { return {local_cuda()}; }

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

using S = core::JobStatus;

// The union plan's jobs as the runner tracks them, and the two moves of its loop: start what is
// ready, take in what finished. Any executor that reports JobEvents can drive it.
class Scheduler {
 public:
  Scheduler(const Plan& plan, std::vector<core::JobStatus> state, tracking::Store& store,
            cluster::Executor& executor, const RunOptions& options, int max_parallel,
            RunSummary& summary)
      : plan_(plan),
        store_(store),
        ledger_(store),
        executor_(executor),
        options_(options),
        max_parallel_(max_parallel),
        summary_(summary),
        state_(std::move(state)),
        attempts_(plan.jobs.size(), 0),
        view_(options.progress_every) {
    for (size_t i = 0; i < plan.jobs.size(); ++i) by_key_[plan.jobs[i].key] = i;
  }

  core::JobStatus state_of(const std::string& key) const { return state_.at(by_key_.at(key)); }

  // Runs until nothing is running and nothing more can start (done, failed or interrupted).
  void loop() {
    while (true) {
      if (!g_interrupted) start_ready();
      if (executor_.running() == 0) {
        summary_.interrupted =
            summary_.interrupted || g_interrupted;  // Ctrl-C before anything started
        break;
      }
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
        restore_replaced(store_, plan_.jobs[i].key, plan_.jobs[i].dir);
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
    cluster::JobLaunch l{
        j.key,
        j.dir,
        {options_.job_exe, "stage", "--spec", j.dir + "/" + core::kSpecFile},
        {{"OMP_NUM_THREADS", t}, {"OPENBLAS_NUM_THREADS", t}, {"MKL_NUM_THREADS", t}},
        j.processes};
    std::string id = executor_.submit(l);
    ledger_.started(j.key, id);
    state_[i] = S::kRunning;
    threads_in_use_ += j.threads * j.processes;
    ++attempts_[i];
    started_[j.key] = std::chrono::steady_clock::now();
    view_.started(j.stage, j.dir);
    core::log_info(j.stage + ": started (" + j.kind + ", attempt " + std::to_string(attempts_[i]) +
                   ", log " + j.dir + "/" + core::kLogFile + ")");
  }

  void fail(size_t i, std::optional<int> exit_code, const std::string& why) {
    state_[i] = S::kFailed;
    ++summary_.failed;
    ledger_.set_status(plan_.jobs[i].key, S::kFailed, exit_code, why);
  }

  void finished(const cluster::JobEvent& ev) {
    const size_t i = by_key_.at(ev.key);
    const auto& j = plan_.jobs[i];
    threads_in_use_ -= j.threads * j.processes;
    view_.finished(j.stage);
    if (ev.state == S::kDone) return ingest(i, ev.exit_code);
    ledger_.ended(j.key, ev.state, ev.exit_code,
                  ev.state != S::kPreempted ? describe_exit(ev.exit_code)
                  : summary_.interrupted    ? "interrupted by the user"
                                            : "checkpoint written");
    if (ev.state == S::kPreempted && !summary_.interrupted) {
      ledger_.set_status(j.key, S::kPending, ev.exit_code, "preempted; requeued");
      state_[i] = S::kPending;  // requeue; does not count as a failed attempt
      --attempts_[i];
    } else if (summary_.interrupted) {
      ledger_.set_status(j.key, S::kPreempted, ev.exit_code, "interrupted by the user");
      state_[i] = S::kPending;
    } else if (attempts_[i] <= j.retries) {
      core::log_warn(j.stage + ": failed (" + describe_exit(ev.exit_code) + "), retrying");
      // A retry resumes from the job's last checkpoint, like a requeue after preemption.
      ledger_.set_status(j.key, S::kPending, ev.exit_code, "failed; retrying");
      state_[i] = S::kPending;
    } else {
      std::string tail = tail_of_log(j.dir);
      fail(i, ev.exit_code, describe_exit(ev.exit_code) + (tail.empty() ? "" : "\n" + tail));
      if (restore_replaced(store_, j.key, j.dir)) {
        core::log_warn(j.stage +
                       ": the forced re-run failed; its previous results stay (log of the failed "
                       "attempt below)");
      }
      core::log_error(j.stage + ": failed (" + describe_exit(ev.exit_code) + "); end of " + j.dir +
                      "/" + core::kLogFile + ":\n" + tail);
    }
  }

  void ingest(size_t i, int exit_code) {
    const auto& j = plan_.jobs[i];
    auto result = core::read_job_result(j.dir);
    if (!result || result->status != "done") {
      ledger_.ended(j.key, S::kFailed, exit_code, "exited 0 without result.json");
      return fail(i, exit_code, "exited 0 without result.json");
    }
    replace_results(store_, j.key, j.dir);
    store_.ingest_job(j.key, j.dir, *result);
    ledger_.set_status(j.key, S::kDone, exit_code);
    ledger_.ended(j.key, S::kDone, exit_code, "");
    state_[i] = S::kDone;
    ++summary_.done;
    char buf[32];
    std::snprintf(
        buf, sizeof(buf), "%.1f",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_[j.key]).count());
    core::log_info(j.stage + ": done in " + buf + " s");
  }

  const Plan& plan_;
  tracking::Store& store_;
  Ledger ledger_;
  cluster::Executor& executor_;
  const RunOptions& options_;
  const int max_parallel_;
  RunSummary& summary_;
  std::vector<S> state_;
  std::vector<int> attempts_;
  std::map<std::string, size_t> by_key_;
  std::map<std::string, std::chrono::steady_clock::time_point> started_;
  int threads_in_use_ = 0;
  LiveView view_;  ///< the running jobs' progress: below the log on a terminal, else lines
};

}  // namespace

RunSummary execute_runs(const std::vector<RunPoint>& points, const RunOptions& options,
                        cluster::Executor& executor) {
  if (points.empty()) throw InternalError("execute_runs: no runs");
  const Recipe& recipe = points[0].recipe;  // store, root and max_parallel are not sweepable
  const Plan plan = merge_plans(points);
  for (const auto& f : options.force) {
    if (!recipe.find_stage(f) && !plan.find(f))
      throw ConfigError("--force: unknown stage '" + f + "'");
  }
  install_interrupt_handlers();  // before the lock: a Ctrl-C from now on stops the run cleanly
  RunnerLock lock(recipe.store);
  tracking::Store store = open_store_for_writing(recipe.store);

  RunSummary summary;
  const std::vector<int64_t> run_ids = register_runs(store, points, options, summary);
  Scheduler sched(plan, classify_jobs(plan, store, forced_jobs(plan, options.force), summary),
                  store, executor, options,
                  options.max_parallel > 0 ? options.max_parallel : recipe.max_parallel, summary);
  auto fate = [&](const std::string& key) { return sched.state_of(key); };
  set_run_statuses(store, points, run_ids, fate, false, false);
  sched.loop();
  set_run_statuses(store, points, run_ids, fate, true, summary.interrupted);
  return summary;
}

}  // namespace upcycle::runner
