#include "runner/slurm_run.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "core/atomic_file.h"
#include "core/job_files.h"
#include "core/log.h"
#include "runner/cost.h"
#include "runner/progress.h"
#include "runner/run_support.h"

namespace upcycle::runner {
namespace {

constexpr const char* kPrefix = "slurm:";

bool is_slurm(const std::string& scheduler_id) { return scheduler_id.rfind(kPrefix, 0) == 0; }
std::string slurm_id(const std::string& scheduler_id) { return scheduler_id.substr(6); }

cluster::SlurmJob slurm_job(const PlannedJob& j) {
  const std::string t = std::to_string(j.threads);
  return {
      j.key,       j.stage,
      j.dir,       {{"OMP_NUM_THREADS", t}, {"OPENBLAS_NUM_THREADS", t}, {"MKL_NUM_THREADS", t}},
      j.processes, j.threads,
      j.slurm};
}

// Jobs still queued or running under an id from an earlier submission are adopted, not resubmitted.
// The collect pass just before brought their store status up to date: no second scheduler query.
std::map<size_t, std::string> adopt_active(const Plan& plan, const std::vector<JobFate>& fate,
                                           tracking::Store& store, const std::set<size_t>& forced) {
  std::map<size_t, std::string> active;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    if (fate[i] != JobFate::kPending || forced.count(i)) continue;
    auto row = store.find_job(plan.jobs[i].key);
    if (row && is_slurm(row->scheduler_id) &&
        (row->status == "queued" || row->status == "running")) {
      active[i] = slurm_id(row->scheduler_id);
    }
  }
  return active;
}

// A forced job still queued or running from an earlier submission is cancelled before it starts
// over.
void cancel_forced(const Plan& plan, const std::set<size_t>& forced, tracking::Store& store,
                   cluster::SlurmExecutor& slurm) {
  std::vector<std::string> ids;
  for (size_t i : forced) {
    auto row = store.find_job(plan.jobs[i].key);
    if (row && is_slurm(row->scheduler_id) &&
        (row->status == "queued" || row->status == "running")) {
      ids.push_back(slurm_id(row->scheduler_id));
    }
  }
  slurm.cancel(ids);
}

// The next group from `i`: jobs of the same stage with the same inputs, none yet submitted (an
// array).
size_t group_end(const Plan& plan, size_t i, const std::vector<bool>& submit) {
  size_t end = i + 1;
  while (end < plan.jobs.size() && submit[end] &&
         plan.jobs[end].stage_name == plan.jobs[i].stage_name &&
         plan.jobs[end].deps == plan.jobs[i].deps) {
    ++end;
  }
  return end;
}

void set_run_status_from_jobs(tracking::Store& store, int64_t run_id) {
  auto rs = store.select(
      "SELECT SUM(j.status = 'done'), SUM(j.status IN ('pending', 'queued', 'running', "
      "'preempted')), COUNT(*) "
      "FROM run_jobs rj JOIN jobs j ON j.id = rj.job_id WHERE rj.run_id = ?",
      {std::to_string(run_id)});
  const auto& row = rs.rows.at(0);
  auto n = [&](size_t c) {
    return std::holds_alternative<int64_t>(row[c]) ? std::get<int64_t>(row[c]) : 0;
  };
  store.set_run_status(run_id, n(0) == n(2) ? "done" : n(1) > 0 ? "running" : "failed");
}

// The Slurm jobs of `runs` (every run when empty) in one of `statuses` (an SQL list of literals):
// key, dir, scheduler id, stage, status.
std::vector<std::vector<tracking::Cell>> slurm_jobs(tracking::Store& store,
                                                    const std::vector<std::string>& runs,
                                                    const char* statuses) {
  std::string sql =
      "SELECT DISTINCT j.key, j.dir, j.scheduler_id, j.stage, j.status FROM jobs j "
      "JOIN run_jobs rj ON rj.job_id = j.id JOIN runs r ON r.id = rj.run_id "
      "WHERE j.scheduler_id LIKE 'slurm:%' AND j.status IN (" +
      std::string(statuses) + ")";
  if (!runs.empty()) {
    sql += " AND r.name IN (";
    for (size_t i = 0; i < runs.size(); ++i) sql += i ? ",?" : "?";
    sql += ")";
  }
  return store.select(sql, runs).rows;
}

// time: auto becomes the cost model's estimate x safety; jobs without an estimate get the
// partition's default.
void apply_time_limits(Plan& plan, const CostSettings& cost, tracking::Store& store) {
  const std::vector<JobCost> costs = estimate_costs(plan, cost, &store);
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    auto& r = plan.jobs[i].slurm;
    if (r.time != "auto") continue;
    const std::string limit = time_limit(costs[i], cost);
    if (limit.empty()) continue;
    r.time = limit;
    core::log_info(plan.jobs[i].stage + ": time limit " + limit + " (" + costs[i].source +
                   " estimate)");
  }
}

}  // namespace

void refresh_slurm_jobs(const std::string& store_path) {
  if (!std::filesystem::exists(store_path)) return;
  {
    tracking::Store ro(store_path, tracking::Store::Mode::kReadOnly);
    auto n = ro.select(
        "SELECT COUNT(*) FROM jobs WHERE scheduler_id LIKE 'slurm:%' AND "
        "status IN ('pending', 'queued', 'running', 'preempted')");
    if (std::get<int64_t>(n.rows.at(0).at(0)) == 0) return;
  }
  try {
    RunnerLock lock(store_path);
    tracking::Store store(store_path);
    cluster::SlurmExecutor slurm = slurm_executor(".", "");
    collect(store, slurm, {});
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
  collect(store, slurm,
          {});  // what finished since the last look counts as complete, what runs is adopted
  RunSummary summary;
  const std::vector<int64_t> run_ids = register_runs(store, points, options, summary);
  const std::set<size_t> forced = forced_jobs(plan, options.force);
  cancel_forced(plan, forced, store, slurm);
  std::vector<JobFate> fate = classify_jobs(plan, store, forced, summary);
  std::map<size_t, std::string> id_of = adopt_active(plan, fate, store, forced);
  apply_time_limits(plan, points[0].recipe.cost, store);
  for (const auto& [i, id] : id_of)
    core::log_info(plan.jobs[i].stage + ": already queued as Slurm job " + id);
  std::vector<bool> submit(plan.jobs.size());
  for (size_t i = 0; i < plan.jobs.size(); ++i)
    submit[i] = fate[i] == JobFate::kPending && !id_of.count(i);
  for (size_t i = 0; i < plan.jobs.size();) {
    if (!submit[i]) {
      ++i;
      continue;
    }
    const size_t end = group_end(plan, i, submit);
    std::vector<cluster::SlurmJob> group;
    std::vector<std::string> after;
    for (size_t g = i; g < end; ++g) {
      core::make_dirs(plan.jobs[g].dir);
      core::write_file_atomic(plan.jobs[g].dir + "/" + core::kSpecFile,
                              plan.jobs[g].spec.dump(2) + "\n");
      group.push_back(slurm_job(plan.jobs[g]));
    }
    for (size_t d : plan.jobs[i].deps) {
      if (fate[d] != JobFate::kDone) after.push_back(id_of.at(d));
    }
    const std::vector<std::string> ids = slurm.submit(group, after);
    for (size_t g = i; g < end; ++g) {
      id_of[g] = ids[g - i];
      store.set_job_status(plan.jobs[g].key, "queued", std::nullopt, "", kPrefix + ids[g - i]);
      core::log_info(
          plan.jobs[g].stage + ": queued as Slurm job " + ids[g - i] +
          (after.empty() ? "" : " (after " + std::to_string(after.size()) + " input job(s))"));
      ++summary.submitted;
    }
    i = end;
  }
  for (int64_t id : run_ids) set_run_status_from_jobs(store, id);
  return summary;
}

CollectSummary collect(tracking::Store& store, cluster::SlurmExecutor& slurm,
                       const std::vector<std::string>& runs) {
  auto rows = slurm_jobs(store, runs, "'pending', 'queued', 'running', 'preempted'");
  std::vector<std::string> ids;
  for (const auto& row : rows) ids.push_back(slurm_id(tracking::text_of(row[2])));
  auto states = slurm.poll(ids);
  CollectSummary c;
  for (const auto& row : rows) {
    const std::string key = tracking::text_of(row[0]), dir = tracking::text_of(row[1]),
                      sid = tracking::text_of(row[2]), stage = tracking::text_of(row[3]),
                      was = tracking::text_of(row[4]);
    const cluster::SlurmStatus& s = states.at(slurm_id(sid));
    auto result = core::read_job_result(dir);
    if (result && result->status == "done" && result->key == key) {  // the result file is the truth
      replace_results(store, key, dir);
      store.ingest_job(key, dir, *result);
      if (was != "running")
        store.set_job_status(key, "running");  // it ran between two looks: one attempt
      store.set_job_status(key, "done", s.exit_code);
      ++c.done;
      c.events.push_back(stage + ": done (Slurm job " + slurm_id(sid) + ")");
      continue;
    }
    if (s.state == cluster::SlurmState::kActive) {
      const std::string now = s.raw == "RUNNING" || s.raw == "COMPLETING" ? "running" : "queued";
      if (now != was) {
        store.set_job_status(key, now, std::nullopt, s.raw == "PENDING" ? "" : s.raw, sid);
        c.events.push_back(stage + ": " + now + " (" + s.raw +
                           (s.restarts ? ", restart " + std::to_string(s.restarts) : "") + ")");
      }
      ++c.active;
      continue;
    }
    std::string why =
        s.state == cluster::SlurmState::kCancelled
            ? (s.reason == "DependencyNeverSatisfied" ? "cancelled: an input job failed"
                                                      : "cancelled")
        : s.state == cluster::SlurmState::kGone ? "Slurm has no record of it and it left no result"
        : s.state == cluster::SlurmState::kDone
            ? "exited 0 without result.json"
            : "Slurm state " + s.raw + " (exit " + std::to_string(s.exit_code) + ")";
    const std::string tail = tail_of_log(dir);
    store.set_job_status(key, s.state == cluster::SlurmState::kCancelled ? "cancelled" : "failed",
                         s.exit_code, why + (tail.empty() ? "" : "\n" + tail), sid);
    if (restore_replaced(store, key, dir)) why += "; the previous results stay";
    ++c.failed;
    c.events.push_back(stage + ": " + why);
  }
  std::set<int64_t> touched;
  for (const auto& row :
       store
           .select("SELECT DISTINCT rj.run_id FROM run_jobs rj JOIN jobs j ON j.id = rj.job_id "
                   "JOIN runs r ON r.id = rj.run_id WHERE r.status != 'done' AND "
                   "j.scheduler_id LIKE 'slurm:%'")
           .rows) {
    touched.insert(std::get<int64_t>(row[0]));
  }
  for (int64_t run : touched) set_run_status_from_jobs(store, run);
  return c;
}

CollectSummary wait_for(tracking::Store& store, cluster::SlurmExecutor& slurm,
                        const std::vector<std::string>& runs) {
  CollectSummary total;
  LiveView view;
  double sleep_s = 1;
  while (true) {
    CollectSummary c = collect(store, slurm, runs);
    std::map<std::string, std::string> running;
    for (const auto& row : store
                               .select("SELECT stage, dir FROM jobs WHERE status = 'running' AND "
                                       "scheduler_id LIKE 'slurm:%'")
                               .rows) {
      running[tracking::text_of(row[0])] = tracking::text_of(row[1]);
    }
    view.set_running(std::move(running));
    for (const auto& e : c.events) core::log_info(e);
    total.done += c.done;
    total.failed += c.failed;
    total.active = c.active;
    if (c.active == 0) return total;
    sleep_s = c.events.empty() ? std::min(30.0, sleep_s * 1.5) : 1;
    std::this_thread::sleep_for(std::chrono::duration<double>(sleep_s));
  }
}

int cancel_runs(tracking::Store& store, cluster::SlurmExecutor& slurm,
                const std::vector<std::string>& runs) {
  collect(store, slurm, runs);
  auto rows = slurm_jobs(store, runs, "'queued', 'running'");
  std::vector<std::string> ids;
  for (const auto& row : rows) ids.push_back(slurm_id(tracking::text_of(row[2])));
  slurm.cancel(ids);
  for (const auto& row : rows)
    store.set_job_status(tracking::text_of(row[0]), "cancelled", std::nullopt,
                         "cancelled by `upcycle cancel`");
  collect(store, slurm, runs);
  return static_cast<int>(rows.size());
}

}  // namespace upcycle::runner
