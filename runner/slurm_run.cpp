#include "runner/slurm_run.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "core/atomic_file.h"
#include "core/job_files.h"
#include "core/log.h"
#include "runner/ledger.h"
#include "runner/progress.h"
#include "runner/run_support.h"
#include "runner/slurm_limits.h"

namespace upcycle::runner {
namespace {

using core::JobStatus;

// How long `cancel` waits for cancelled jobs to leave the queue before it signals them again.
constexpr double kCancelWaitS = 60;

// Jobs still queued or running under an id from an earlier submission are adopted, not
// resubmitted; so are submissions whose runner died between sbatch and recording the id (the
// collect pass just before found them by name and comment).
std::map<size_t, std::string> adopt_active(const Plan& plan, const std::vector<JobStatus>& fate,
                                           Ledger& ledger, const std::set<size_t>& forced) {
  std::map<size_t, std::string> active;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    if (fate[i] != JobStatus::kPending || forced.count(i)) continue;
    if (auto id = ledger.queued_slurm_id(plan.jobs[i].key)) active[i] = *id;
  }
  return active;
}

// A forced job still queued or running from an earlier submission is cancelled before it starts
// over.
void cancel_forced(const Plan& plan, const std::set<size_t>& forced, Ledger& ledger,
                   cluster::SlurmExecutor& slurm) {
  std::vector<std::string> ids;
  for (size_t i : forced) {
    if (auto id = ledger.queued_slurm_id(plan.jobs[i].key)) ids.push_back(*id);
  }
  slurm.cancel(ids);
}

// A submission: plan.jobs[begin, end), a stage's jobs with the same inputs (an array when several).
struct Group {
  size_t begin = 0, end = 0;
};

// The marked jobs as submissions, in plan order.
std::vector<Group> groups_of(const Plan& plan, const std::vector<bool>& submit) {
  std::vector<Group> groups;
  for (size_t i = 0; i < plan.jobs.size();) {
    if (!submit[i]) {
      ++i;
      continue;
    }
    size_t end = i + 1;
    while (end < plan.jobs.size() && submit[end] &&
           plan.jobs[end].stage_name == plan.jobs[i].stage_name &&
           plan.jobs[end].deps == plan.jobs[i].deps) {
      ++end;
    }
    groups.push_back({i, end});
    i = end;
  }
  return groups;
}

// Writes the group's specs and submits it after `after`; returns one id per job.
std::vector<std::string> submit_group(const Plan& plan, const Group& g,
                                      const std::vector<std::string>& after,
                                      cluster::SlurmExecutor& slurm) {
  std::vector<cluster::SlurmJob> jobs;
  for (size_t k = g.begin; k < g.end; ++k) {
    const PlannedJob& j = plan.jobs[k];
    core::make_dirs(j.dir);
    core::write_file_atomic(j.dir + "/" + core::kSpecFile, j.spec.dump(2) + "\n");
    std::filesystem::remove(j.dir + "/" + core::kCancelMark);  // a resumed cancelled job
    jobs.push_back(slurm_job(j));
  }
  return slurm.submit(jobs, after);
}

// A submission refused half-way: that group fails with sbatch's reason, the later ones were never
// submitted, and what this pass queued is withdrawn (no half DAG).
void abandon(const Plan& plan, const std::vector<Group>& groups, size_t refused,
             const std::string& why, const std::vector<std::string>& this_pass, Ledger& ledger,
             cluster::SlurmExecutor& slurm) {
  slurm.cancel(this_pass);
  for (size_t n = refused; n < groups.size(); ++n) {
    for (size_t k = groups[n].begin; k < groups[n].end; ++k) {
      const JobStatus s = n == refused ? JobStatus::kFailed : JobStatus::kCancelled;
      const std::string reason =
          n == refused
              ? why
              : "not submitted: " + plan.jobs[groups[refused].begin].stage + " was refused";
      ledger.ended(plan.jobs[k].key, s, std::nullopt, reason);
      ledger.set_status(plan.jobs[k].key, s, std::nullopt, reason);
    }
  }
}

// Queues the marked jobs in plan order, each after its unfinished inputs. Every intent is in the
// ledger before the first sbatch (one transaction); each id right after its sbatch.
void queue_marked(const Plan& plan, const std::vector<bool>& submit,
                  const std::vector<JobStatus>& fate, std::map<size_t, std::string>& id_of,
                  Ledger& ledger, cluster::SlurmExecutor& slurm, RunSummary& summary) {
  const std::vector<Group> groups = groups_of(plan, submit);
  std::vector<std::pair<std::string, Intent>> intents;
  for (const Group& g : groups) {
    for (size_t k = g.begin; k < g.end; ++k) {
      const int task = g.end - g.begin > 1 ? static_cast<int>(k - g.begin) : -1;
      intents.push_back({plan.jobs[k].key, {plan.jobs[g.begin].key, task}});
    }
  }
  ledger.intend(intents);
  std::vector<std::string> this_pass;
  for (size_t n = 0; n < groups.size(); ++n) {
    const Group& g = groups[n];
    std::vector<std::string> after;
    for (size_t d : plan.jobs[g.begin].deps) {
      if (fate[d] != JobStatus::kDone) after.push_back(id_of.at(d));
    }
    std::vector<std::string> ids;
    try {
      ids = submit_group(plan, g, after, slurm);
    } catch (const ClusterError& e) {
      abandon(plan, groups, n, e.what(), this_pass, ledger, slurm);
      throw;
    }
    std::vector<std::pair<std::string, std::string>> recorded;
    for (size_t k = g.begin; k < g.end; ++k) {
      const std::string& id = ids[k - g.begin];
      id_of[k] = id;
      this_pass.push_back(id);
      recorded.push_back({plan.jobs[k].key, id});
      core::log_info(
          plan.jobs[k].stage + ": queued as Slurm job " + id +
          (after.empty() ? "" : " (after " + std::to_string(after.size()) + " input job(s))"));
      ++summary.submitted;
    }
    ledger.submitted(recorded);
  }
}

// What the job's pending reason means for the person waiting.
std::string never_clears_hint(const std::string& reason) {
  if (reason.rfind("PartitionTimeLimit", 0) == 0)
    return "its time limit exceeds the partition's MaxTime: lower slurm.time or set "
           "slurm.max_time";
  if (reason.rfind("ReqNodeNotAvail", 0) == 0)
    return "a node it asks for is down, drained or does not exist";
  if (reason.find("Account") != std::string::npos || reason.find("QOS") != std::string::npos)
    return "slurm.account or slurm.qos is not one this user may use here, or its limit is below "
           "the job's";
  return "it asks for more than the partition allows";
}

// A job whose runner died between sbatch and recording the id: adopted if Slurm has it, else
// pending again.
void resolve_intent(Ledger& ledger, tracking::Store& store, cluster::SlurmExecutor& slurm,
                    const LedgerJob& j, CollectSummary& c) {
  const auto intent = ledger.open_intent(j.key);
  std::optional<std::string> id;
  if (intent) {
    auto first = store.find_job(intent->first_key);
    if (first) id = slurm.find_active(intent->first_key, first->dir, true);
  }
  if (id) {
    const std::string sid = intent->task < 0 ? *id : *id + "_" + std::to_string(intent->task);
    ledger.submitted({{j.key, sid}});
    c.events.push_back(j.stage + ": found as Slurm job " + sid + " (its runner died after sbatch)");
    ++c.active;
  } else {
    ledger.ended(j.key, JobStatus::kCancelled, std::nullopt, "never reached the queue");
    ledger.set_status(j.key, JobStatus::kPending, std::nullopt,
                      "its submission was interrupted; `upcycle resume` submits it");
  }
}

// One job of a collect pass, given what Slurm says of it now.
void collect_one(Ledger& ledger, tracking::Store& store, cluster::SlurmExecutor& slurm,
                 const LedgerJob& j, const cluster::SlurmStatus& s, CollectSummary& c) {
  ledger.observe(j, s);
  auto result = core::read_job_result(j.dir);
  if (result && result->status == "done" && result->key == j.key) {  // the result file is the truth
    replace_results(store, j.key, j.dir);
    store.ingest_job(j.key, j.dir, *result);
    ledger.finished_with_result(j.key, result->wall_s);
    ledger.set_status(j.key, JobStatus::kDone, s.exit_code);
    ++c.done;
    c.events.push_back(j.stage + ": done (Slurm job " + j.slurm_id + ")");
    return;
  }
  if (s.known && core::is_active(s.status)) {
    if (j.cancel_requested) {  // a requeue raced the cancel: cancel again
      slurm.cancel({j.slurm_id});
      ++c.active;
      return;
    }
    if (s.status == JobStatus::kQueued && cluster::reason_never_clears(s.reason)) {
      slurm.cancel({j.slurm_id});
      const std::string why =
          "pending forever: " + s.reason + " (" + never_clears_hint(s.reason) + ")";
      ledger.set_status(j.key, JobStatus::kFailed, std::nullopt, why);
      ++c.failed;
      c.events.push_back(j.stage + ": " + why);
      return;
    }
    const JobStatus now =
        s.status == JobStatus::kRunning ? JobStatus::kRunning : JobStatus::kQueued;
    const std::string why = now == JobStatus::kQueued ? s.reason : "";
    auto row = store.find_job(j.key);
    if (!row || row->status != now || row->error != why) {
      ledger.set_status(j.key, now, std::nullopt, why);
      c.events.push_back(j.stage + ": " + core::to_string(now) + " (" + s.raw +
                         (why.empty() ? "" : ": " + why) +
                         (s.restarts ? ", restart " + std::to_string(s.restarts) : "") + ")");
    }
    ++c.active;
    return;
  }
  const bool cancelled = j.cancel_requested || s.status == JobStatus::kCancelled;
  std::string why = j.cancel_requested ? "cancelled by `upcycle cancel`"
                    : cancelled
                        ? (s.reason == "DependencyNeverSatisfied" ? "cancelled: an input job failed"
                                                                  : "cancelled")
                    : !s.known ? "Slurm has no record of it and it left no result"
                    : s.status == JobStatus::kDone
                        ? "exited 0 without result.json"
                        : "Slurm state " + s.raw + " (exit " + std::to_string(s.exit_code) + ")";
  const std::string tail = cancelled ? "" : tail_of_log(j.dir);
  ledger.set_status(j.key, cancelled ? JobStatus::kCancelled : JobStatus::kFailed, s.exit_code,
                    why + (tail.empty() ? "" : "\n" + tail));
  if (restore_replaced(store, j.key, j.dir)) why += "; the previous results stay";
  ++c.failed;
  c.events.push_back(j.stage + ": " + why);
}

std::string clock_time(std::chrono::system_clock::time_point t) {
  const std::time_t tt = std::chrono::system_clock::to_time_t(t);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%H:%M:%S", std::localtime(&tt));
  return buf;
}

}  // namespace

void refresh_slurm_jobs(const std::string& store_path) {
  if (!std::filesystem::exists(store_path)) return;
  {
    tracking::Store ro(store_path, tracking::Store::Mode::kReadOnly);
    if (!Ledger(ro).has_active_slurm_jobs()) return;
  }
  try {
    RunnerLock lock(store_path);
    tracking::Store store(store_path);
    cluster::SlurmExecutor slurm = slurm_executor(".", "");
    collect(store, slurm, {});
  } catch (const ClusterError& e) {
    core::log_warn(std::string("the Slurm controller is unreachable; statuses as last seen: ") +
                   e.what());
  } catch (const StoreError&) {
    // another runner holds the store: it collects
  }
}

cluster::SlurmExecutor slurm_executor(const std::string& root, const std::string& job_exe) {
  return cluster::SlurmExecutor(
      std::filesystem::absolute(root).lexically_normal().string() + "/slurm", job_exe);
}

RunSummary submit_runs(const std::vector<RunPoint>& points, const RunOptions& options,
                       cluster::SlurmExecutor& slurm) {
  if (points.empty()) throw InternalError("submit_runs: no runs");
  Plan plan = merge_plans(points);
  RunnerLock lock(points[0].recipe.store);
  tracking::Store store = open_store_for_writing(points[0].recipe.store);
  Ledger ledger(store);
  // What finished since the last look counts as complete, what runs (or was submitted by a runner
  // that died) is adopted.
  for (const auto& e : collect(store, slurm, {}).events) core::log_info(e);
  RunSummary summary;
  const std::vector<int64_t> run_ids = register_runs(store, points, options, summary);
  const std::set<size_t> forced = forced_jobs(plan, options.force);
  cancel_forced(plan, forced, ledger, slurm);
  std::vector<JobStatus> fate = classify_jobs(plan, store, forced, summary);
  std::map<size_t, std::string> id_of = adopt_active(plan, fate, ledger, forced);
  for (const auto& [i, id] : id_of)
    core::log_info(plan.jobs[i].stage + ": already queued as Slurm job " + id);
  std::vector<bool> submit(plan.jobs.size());
  for (size_t i = 0; i < plan.jobs.size(); ++i)
    submit[i] = fate[i] == JobStatus::kPending && !id_of.count(i);
  try {  // every refusal before the first sbatch: no half DAG
    prepare_for_slurm(plan, points[0].recipe.cost, &store, slurm, submit);
  } catch (const ClusterError&) {
    for (int64_t id : run_ids) store.set_run_status(id, "failed");
    throw;
  }
  try {
    queue_marked(plan, submit, fate, id_of, ledger, slurm, summary);
  } catch (const ClusterError&) {
    collect(store, slurm, {});
    ledger.update_run_statuses(run_ids);
    throw;
  }
  ledger.update_run_statuses(run_ids);
  return summary;
}

CollectSummary collect(tracking::Store& store, cluster::SlurmExecutor& slurm,
                       const std::vector<std::string>& runs) {
  Ledger ledger(store);
  const std::vector<LedgerJob> jobs = ledger.active_slurm_jobs(runs);
  std::vector<std::string> ids;
  for (const auto& j : jobs) {
    if (!j.slurm_id.empty()) ids.push_back(j.slurm_id);
  }
  const auto states = slurm.poll(ids);  // ClusterError when the controller does not answer
  CollectSummary c;
  for (const auto& j : jobs) {
    if (j.slurm_id.empty()) {
      resolve_intent(ledger, store, slurm, j, c);
    } else {
      collect_one(ledger, store, slurm, j, states.at(j.slurm_id), c);
    }
  }
  ledger.update_run_statuses();
  return c;
}

CollectSummary wait_for(tracking::Store& store, cluster::SlurmExecutor& slurm,
                        const std::vector<std::string>& runs, double unreachable_grace_s,
                        int progress_every) {
  using Clock = std::chrono::steady_clock;
  CollectSummary total;
  LiveView view(progress_every);
  double sleep_s = 1;
  std::optional<Clock::time_point> lost;  // when the controller stopped answering
  Ledger ledger(store);
  // The runs waited for: their failures decide the outcome, whichever pass (or `status`) saw them.
  const std::vector<std::string> scope = runs.empty() ? ledger.runs_with_active_jobs() : runs;
  while (true) {
    CollectSummary c;
    try {
      c = collect(store, slurm, runs);
      if (lost) core::log_info("the Slurm controller answers again");
      lost.reset();
    } catch (const ClusterError& e) {
      const auto now = Clock::now();
      if (!lost) {
        lost = now;
        core::log_warn("controller unreachable since " +
                       clock_time(std::chrono::system_clock::now()) + "; retrying for up to " +
                       std::to_string(int(unreachable_grace_s)) + " s (" + e.what() + ")");
      }
      if (std::chrono::duration<double>(now - *lost).count() > unreachable_grace_s) {
        throw ClusterError("the Slurm controller has been unreachable for " +
                               std::to_string(int(unreachable_grace_s)) + " s: " + e.what(),
                           "the jobs keep their state; `upcycle wait` again once it is back");
      }
      sleep_s = std::min(30.0, sleep_s * 2);
      std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
      continue;
    }
    std::map<std::string, std::string> running;
    for (const auto& j : Ledger(store).active_slurm_jobs(runs)) {
      if (j.status == JobStatus::kRunning) running[j.stage] = j.dir;
    }
    view.set_running(std::move(running));
    for (const auto& e : c.events) core::log_info(e);
    total.done += c.done;
    total.active = c.active;
    if (c.active == 0) {
      const auto failed = ledger.failed_jobs(scope);
      total.failed = static_cast<int>(failed.size());
      for (const auto& f : failed) total.events.push_back(f);
      return total;
    }
    sleep_s = c.events.empty() ? std::min(30.0, sleep_s * 1.5) : 1;
    std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
  }
}

int cancel_runs(tracking::Store& store, cluster::SlurmExecutor& slurm,
                const std::vector<std::string>& runs) {
  collect(store, slurm, runs);
  Ledger ledger(store);
  std::vector<LedgerJob> jobs = ledger.active_slurm_jobs(runs);
  std::vector<std::string> ids;
  // The mark first, in the ledger and beside the job (its batch script reads it): a job that
  // checkpoints on the signal then exits instead of requeueing itself.
  for (const auto& j : jobs) {
    ledger.request_cancel(j.key);
    if (std::filesystem::exists(j.dir))
      core::write_file_atomic(j.dir + "/" + core::kCancelMark, "upcycle cancel\n");
    if (!j.slurm_id.empty()) ids.push_back(j.slurm_id);
  }
  slurm.cancel(ids);
  const auto t0 = std::chrono::steady_clock::now();
  while (true) {
    CollectSummary c = collect(store, slurm, runs);  // cancels again what a requeue brought back
    if (c.active == 0) break;
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >
        kCancelWaitS) {
      core::log_warn(std::to_string(c.active) + " job(s) still in Slurm's queue " +
                     std::to_string(int(kCancelWaitS)) +
                     " s after scancel; `upcycle status` "
                     "follows them");
      break;
    }
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  return static_cast<int>(jobs.size());
}

}  // namespace upcycle::runner
