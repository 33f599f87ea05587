#include "runner/cost.h"

#include <cmath>
#include <map>
#include <sstream>

#include "core/error.h"
#include "runner/memory_fit.h"

namespace upcycle::runner {
namespace {

// Dense bf16 peaks (FLOP/s) from the vendors' data sheets (without sparsity).
double gpu_peak(const std::string& gpu) {
  static const std::map<std::string, double> kPeaks = {{"h100", 989e12}, {"h200", 989e12},
                                                       {"a100", 312e12}, {"l40s", 362e12},
                                                       {"a10", 125e12},  {"v100", 125e12}};
  auto it = kPeaks.find(gpu);
  return it == kPeaks.end() ? 0 : it->second;
}

std::string device_of(const PlannedJob& j) { return j.spec.value("device", std::string("cpu")); }

double from_store(const PlannedJob& j, tracking::Store* store) {
  if (!store || j.shape.empty()) return 0;
  tracking::ResultSet rs;
  try {
    rs = store->select(
        "SELECT AVG(tokens_per_s) FROM jobs WHERE shape = ? AND status = 'done' AND tokens_per_s > "
        "0",
        {j.shape});
  } catch (const StoreError&) {
    return 0;  // a store from before throughput was kept (schema v2, opened read-only): no history
  }
  const auto& c = rs.rows.at(0).at(0);
  return std::holds_alternative<double>(c) ? std::get<double>(c) : 0;
}

std::string duration(double s) {
  char buf[32];
  if (s < 120)
    std::snprintf(buf, sizeof(buf), "%.0f s", s);
  else if (s < 7200)
    std::snprintf(buf, sizeof(buf), "%.1f min", s / 60);
  else if (s < 172800)
    std::snprintf(buf, sizeof(buf), "%.1f h", s / 3600);
  else
    std::snprintf(buf, sizeof(buf), "%.1f d", s / 86400);
  return buf;
}

}  // namespace

std::vector<JobCost> estimate_costs(const Plan& plan, const CostSettings& cost,
                                    tracking::Store* store, const ThroughputBench& bench) {
  std::vector<JobCost> out;
  for (const auto& j : plan.jobs) {
    JobCost c;
    if (j.seconds_of) {  // budget.by time: the matched job's device-seconds, by construction
      c = out.at(*j.seconds_of);
      c.seconds *= double(plan.jobs[*j.seconds_of].processes) / j.processes;
      c.tokens_per_s = 0;
      c.source = c.source.empty() ? "" : "matched";
      out.push_back(c);
      continue;
    }
    if (j.train_flops <= 0) {
      out.push_back(c);
      continue;
    }
    const double flops_per_token = j.train_flops / std::max(1.0, j.spec.value("tokens", 1.0));
    const bool gpu = device_of(j) == "cuda";
    if ((c.tokens_per_s = from_store(j, store)) > 0) {
      c.source = "store";
    } else if (bench && (c.tokens_per_s = bench(j)) > 0) {
      c.source = "bench";
    } else {
      const double flops_per_s = gpu ? cost.mfu * gpu_peak(cost.gpu) * j.processes
                                     : cost.cpu_flops * j.threads * j.processes;
      c.tokens_per_s = flops_per_s / flops_per_token;
      c.source = "mfu";
    }
    c.seconds = j.spec.value("tokens", 0.0) / c.tokens_per_s;
    c.gpu_hours = gpu ? c.seconds * j.processes / 3600 : 0;
    out.push_back(c);
  }
  return out;
}

std::string slurm_duration(double seconds) {
  long long minutes = static_cast<long long>(std::ceil(seconds / 60));
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%lld-%02lld:%02lld:00", minutes / 1440, minutes / 60 % 24,
                minutes % 60);
  return buf;
}

std::string time_limit(const JobCost& c, const CostSettings& cost) {
  if (c.source.empty()) return "";
  return slurm_duration(std::max(c.seconds * cost.safety, 60.0 * cost.min_minutes));
}

std::string describe_costs(const Plan& plan, const std::vector<JobCost>& costs,
                           const CostSettings& cost) {
  std::ostringstream out;
  out << "cost estimate (" << cost.gpu << " at MFU " << cost.mfu
      << " where no history; time limit = estimate x " << cost.safety << ", at least "
      << cost.min_minutes << " min):\n";
  double total_s = 0, total_gpu_h = 0, total_flops = 0;
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const PlannedJob& j = plan.jobs[i];
    const JobCost& c = costs.at(i);
    out << "  " << j.stage << ": ";
    const std::string set = j.slurm.time != "auto" ? j.slurm.time : "";
    if (c.source.empty()) {
      out << "no estimate for " << j.kind << " jobs; time limit "
          << (set.empty() ? "the partition's default" : set + " (recipe)") << "\n";
      continue;
    }
    if (j.seconds_of) {
      out << plan.jobs[*j.seconds_of].stage << "'s device-seconds (budget.by time, " << device_of(j)
          << " x" << j.processes << ") = " << duration(c.seconds);
    } else {
      out << format_si(j.train_flops, "FLOP") << " at " << format_si(c.tokens_per_s, " tok/s")
          << " (" << c.source << ", " << device_of(j) << " x" << j.processes
          << ") = " << duration(c.seconds);
    }
    if (c.gpu_hours > 0) out << ", " << format_si(c.gpu_hours, " GPU-h");
    out << ", time limit " << (set.empty() ? time_limit(c, cost) : set + " (recipe)") << "\n";
    if (const auto f = memory_fit(j, cost)) {
      out << "      memory per " << (device_of(j) == "cpu" ? "process" : cost.gpu) << ": "
          << stages::describe_memory(f->estimate, 3) << "; "
          << (f->fits ? "fits " : "DOES NOT FIT ")
          << stages::format_bytes(double(f->capacity_bytes)) << "\n";
    }
    total_s += c.seconds;
    total_gpu_h += c.gpu_hours;
    total_flops += j.train_flops;
  }
  out << "  total: " << format_si(total_flops, "FLOP") << ", " << duration(total_s)
      << " of job wall time (summed)";
  if (total_gpu_h > 0) out << ", " << format_si(total_gpu_h, " GPU-h");
  out << "\n";
  return out.str();
}

nlohmann::json costs_json(const Plan& plan, const std::vector<JobCost>& costs,
                          const CostSettings& cost) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < plan.jobs.size(); ++i) {
    const PlannedJob& j = plan.jobs[i];
    const JobCost& c = costs.at(i);
    nlohmann::json o = {
        {"stage", j.stage},
        {"kind", j.kind},
        {"source", c.source},
        {"tokens_per_s", c.tokens_per_s},
        {"seconds", c.seconds},
        {"gpu_hours", c.gpu_hours},
        {"train_flops", j.train_flops},
        {"time_limit", j.slurm.time != "auto" ? j.slurm.time : time_limit(c, cost)}};
    if (const auto f = memory_fit(j, cost)) {
      o["peak_memory_bytes"] = f->estimate.peak;
      o["gpu_memory_bytes"] = f->device_bytes;
      o["capacity_bytes"] = f->capacity_bytes;
      o["fits"] = f->fits;
      o["peak_phase"] = f->estimate.peak_phase;
      nlohmann::json terms = nlohmann::json::object();
      for (const auto& t : f->estimate.largest()) terms[t.name] = t.bytes;
      o["memory_breakdown"] = terms;
    }
    out.push_back(o);
  }
  return out;
}

}  // namespace upcycle::runner
