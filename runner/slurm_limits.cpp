#include "runner/slurm_limits.h"

#include <algorithm>
#include <cmath>
#include <future>
#include <map>
#include <set>

#include "core/error.h"
#include "core/integer.h"
#include "core/log.h"
#include "runner/cost.h"

namespace upcycle::runner {
namespace {

using cluster::Partition;

constexpr int64_t kStartupS = 60;  ///< what each link of a requeue chain spends starting up

std::string minutes_text(int64_t s) { return slurm_duration(double(s)); }

std::string one_decimal(double x) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", x);
  return buf;
}

// The slowest checkpoint save measured for train jobs of this shape, 0 when none was.
double measured_save_s(tracking::Store* store, const PlannedJob& j) {
  if (!store || j.shape.empty()) return 0;
  auto rs = store->select("SELECT MAX(checkpoint_save_s) FROM jobs WHERE shape = ?", {j.shape});
  const auto& c = rs.rows.at(0).at(0);
  return std::holds_alternative<double>(c) ? std::get<double>(c) : 0;
}

// "32G" in MiB; 0 when unset.
int64_t mem_mb(const std::string& mem) {
  if (mem.empty()) return 0;
  const char unit = std::isdigit(static_cast<unsigned char>(mem.back())) ? 'M' : mem.back();
  const int64_t n = core::parse_integer(mem.substr(0, mem.size() - (unit == mem.back() ? 1 : 0)),
                                        {0, int64_t(1) << 40}, false);
  switch (unit) {
    case 'K':
      return (n + 1023) / 1024;
    case 'G':
      return n * 1024;
    case 'T':
      return n * 1024 * 1024;
    default:
      return n;
  }
}

std::string names(const std::vector<Partition>& site) {
  std::string out;
  for (const auto& p : site) out += (out.empty() ? "" : ", ") + p.name + (p.is_default ? "*" : "");
  return out;
}

void check_limits(const PlannedJob& j, const Partition& p, std::vector<std::string>& out) {
  const auto& r = j.slurm;
  auto refuse = [&](const std::string& what) { out.push_back(j.stage + ": " + what); };
  if (auto t = cluster::time_seconds(r.time); t && p.max_time_s && *t > *p.max_time_s) {
    refuse("time " + r.time + " exceeds partition " + p.name + "'s MaxTime " +
           minutes_text(*p.max_time_s) + " (slurm.time, or time: auto with slurm.max_time)");
  }
  if (p.max_nodes && r.nodes > *p.max_nodes)
    refuse("nodes " + std::to_string(r.nodes) + " exceeds partition " + p.name + "'s MaxNodes " +
           std::to_string(*p.max_nodes));
  if (!p.nodes.empty() && r.nodes > static_cast<int>(p.nodes.size()))
    refuse("nodes " + std::to_string(r.nodes) + " exceeds partition " + p.name + "'s " +
           std::to_string(p.nodes.size()) + " node(s)");
  int cpus = 0, gpus = 0;
  int64_t mem = 0;
  for (const auto& n : p.nodes) {
    cpus = std::max(cpus, n.cpus);
    gpus = std::max(gpus, n.gpus);
    mem = std::max(mem, n.mem_mb);
  }
  const int per_node = (j.processes + r.nodes - 1) / r.nodes;
  const int want_cpus = per_node * (r.cpus_per_task > 0 ? r.cpus_per_task : j.threads);
  if (!p.nodes.empty() && want_cpus > cpus)
    refuse("CPUs per node " + std::to_string(want_cpus) + " (" + std::to_string(per_node) +
           " rank(s) x " + std::to_string(want_cpus / per_node) + ") exceed partition " + p.name +
           "'s largest node (" + std::to_string(cpus) + ")");
  if (!p.nodes.empty() && r.gpus_per_node > gpus)
    refuse("gpus_per_node " + std::to_string(r.gpus_per_node) + " exceeds partition " + p.name +
           "'s largest node (" + std::to_string(gpus) + " GPU(s))");
  if (!p.nodes.empty() && mem_mb(r.mem) > mem)
    refuse("mem " + r.mem + " exceeds partition " + p.name + "'s largest node (" +
           std::to_string(mem) + "M)");
}

}  // namespace

cluster::SlurmJob slurm_job(const PlannedJob& j) {
  const std::string t = std::to_string(j.threads);
  return {
      j.key,       j.stage,
      j.dir,       {{"OMP_NUM_THREADS", t}, {"OPENBLAS_NUM_THREADS", t}, {"MKL_NUM_THREADS", t}},
      j.processes, j.threads,
      j.slurm};
}

std::vector<std::string> settle_slurm_limits(Plan& plan, const CostSettings& cost,
                                             tracking::Store* store,
                                             const std::vector<Partition>& site,
                                             const std::vector<bool>& only) {
  const std::vector<JobCost> costs = estimate_costs(plan, cost, store);
  std::vector<std::string> lines;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    if (!only.empty() && !only[i]) continue;
    PlannedJob& j = plan.jobs[i];
    auto& r = j.slurm;
    const Partition* p = cluster::find_partition(site, r.partition);
    std::optional<int64_t> cap = p ? p->max_time_s : std::nullopt;
    if (auto own = cluster::time_seconds(r.max_time.empty() ? "auto" : r.max_time))
      cap = cap ? std::min(*cap, *own) : *own;
    std::string line = j.stage + ": ";
    // The signal first: each link of a chain loses it (and a start-up) to the next.
    const double save = r.signal_seconds == cluster::kAutoSignal ? measured_save_s(store, j) : 0;
    const bool auto_signal = r.signal_seconds == cluster::kAutoSignal;
    if (auto_signal)
      r.signal_seconds =
          static_cast<int>(std::max<int64_t>(cluster::kSignalFloorS, std::llround(2 * save + 60)));
    if (r.time == "auto") {
      const std::string limit = time_limit(costs[i], cost);
      if (limit.empty()) {
        line += "time: the partition's default (no estimate for " + j.kind + " jobs)";
      } else if (const int64_t want = *cluster::time_seconds(limit); cap && want > *cap) {
        r.time = minutes_text(*cap);
        if (auto_signal)
          r.signal_seconds = static_cast<int>(std::min<int64_t>(r.signal_seconds, *cap / 2));
        const int64_t link = std::max<int64_t>(*cap - r.signal_seconds - kStartupS, 60);
        const int chain = static_cast<int>((want + link - 1) / link);
        r.max_requeues += chain - 1;
        line += "time " + r.time + " (the cap) x a chain of " + std::to_string(chain) +
                " jobs for an estimate of " + limit + " (" + costs[i].source + ")";
      } else {
        r.time = limit;
        line += "time " + limit + " (" + costs[i].source + " estimate)";
      }
    } else {
      line += "time " + r.time + " (recipe)";
    }
    if (auto_signal) {
      if (auto t = cluster::time_seconds(r.time))
        r.signal_seconds = static_cast<int>(std::min<int64_t>(r.signal_seconds, *t / 2));
      line += ", USR2 " + std::to_string(r.signal_seconds) + " s before it" +
              (save > 0 ? " (checkpoint saves took up to " + one_decimal(save) + " s)"
                        : " (no checkpoint measured yet: the floor)");
    }
    line += ", requeues up to " + std::to_string(r.max_requeues);
    lines.push_back(line);
  }
  return lines;
}

std::vector<std::string> slurm_refusals(const Plan& plan, const std::vector<Partition>& site,
                                        const cluster::SlurmExecutor& slurm,
                                        const std::vector<bool>& only) {
  std::vector<std::string> out;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    if (!only.empty() && !only[i]) continue;
    const PlannedJob& j = plan.jobs[i];
    const Partition* p = cluster::find_partition(site, j.slurm.partition);
    if (!p) {
      out.push_back(j.stage + ": partition " +
                    (j.slurm.partition.empty() ? "(default): the site has no default partition"
                                               : "'" + j.slurm.partition + "' does not exist") +
                    " (partitions: " + names(site) + ")");
      continue;
    }
    try {
      cluster::validate(j.slurm);
    } catch (const ClusterError& e) {
      out.push_back(j.stage + ": " + e.what());
    }
    check_limits(j, *p, out);
  }
  if (!out.empty()) return out;
  // sbatch --test-only once per distinct shape, all at once (each a round trip to the controller).
  std::set<std::vector<std::string>> shapes;
  std::vector<std::pair<std::string, std::future<std::optional<std::string>>>> checks;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    if (!only.empty() && !only[i]) continue;
    const PlannedJob& j = plan.jobs[i];
    if (!shapes.insert(cluster::sbatch_options(j.slurm, j.processes, j.threads)).second) continue;
    checks.emplace_back(j.stage, std::async(std::launch::async, [&slurm, job = slurm_job(j)] {
                          return slurm.test_only(job);
                        }));
  }
  for (auto& [stage, check] : checks) {
    if (auto why = check.get()) out.push_back(stage + ": sbatch --test-only: " + *why);
  }
  return out;
}

void prepare_for_slurm(Plan& plan, const CostSettings& cost, tracking::Store* store,
                       const cluster::SlurmExecutor& slurm, const std::vector<bool>& only) {
  const std::vector<Partition> site = cluster::query_partitions();
  for (const auto& line : settle_slurm_limits(plan, cost, store, site, only)) core::log_info(line);
  const std::vector<std::string> refusals = slurm_refusals(plan, site, slurm, only);
  if (refusals.empty()) return;
  std::string msg =
      "Slurm would refuse " + std::to_string(refusals.size()) + " job(s); nothing was submitted:";
  for (const auto& r : refusals) msg += "\n  " + r;
  throw ClusterError(msg,
                     "`upcycle plan RECIPE --executor slurm` checks a recipe against the site");
}

}  // namespace upcycle::runner
