#include "runner/memory_fit.h"

#include <unistd.h>

#include <map>

#include "core/error.h"
#include "stages/spec/train.h"

namespace upcycle::runner {
namespace {

bool is_cuda_job(const PlannedJob& j) {
  return j.spec.value("device", std::string("cpu")) != "cpu";
}

stages::MemoryPlan memory_plan(const PlannedJob& j) {
  stages::MemoryPlan p;
  const int64_t batch = j.spec.value("batch_size", int64_t(1));
  const int64_t local = std::max<int64_t>(1, batch / std::max(1, j.processes));
  const int64_t micro = j.spec.value("micro_batch", int64_t(0));
  p.micro_batch = micro > 0 ? std::min(micro, local) : local;
  p.world = j.processes;
  p.zero = j.spec.value("zero", int64_t(0));
  p.recompute = core::enum_from(stages::kRecomputeNames,
                                j.spec.value("checkpoint_activations", std::string("none")),
                                "checkpoint_activations");
  p.loss_chunk_tokens = j.spec.value("loss_chunk_tokens", int64_t(0));
  p.cuda = is_cuda_job(j);
  p.bf16 = stages::effective_precision(j.spec.value("precision", std::string("auto")),
                                       p.cuda ? "cuda" : "cpu") == "bf16";
  p.eval_windows = j.spec.value("eval_windows", int64_t(8));
  return p;
}

int64_t host_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? int64_t(pages) * int64_t(page) : 0;
}

// Settings that would make the job fit, alone and then together, as recipe keys.
std::string remedies(const PlannedJob& j, const CostSettings& cost) {
  const stages::MemoryPlan base = memory_plan(j);
  const MemoryFit now = *memory_fit(j, cost);
  std::vector<std::pair<std::string, stages::MemoryPlan>> tries;
  auto with = [&](const std::string& what, auto change) {
    stages::MemoryPlan p = base;
    change(p);
    tries.emplace_back(what, p);
  };
  if (base.world > 1 && base.zero < 1) with("train.zero: 1", [](auto& p) { p.zero = 1; });
  if (base.world > 1 && base.zero < 2) with("train.zero: 2", [](auto& p) { p.zero = 2; });
  if (base.recompute != stages::Recompute::kBlock)
    with("train.checkpoint_activations: block",
         [](auto& p) { p.recompute = stages::Recompute::kBlock; });
  if (base.micro_batch > 1)
    with("train.micro_batch: " + std::to_string(base.micro_batch / 2),
         [](auto& p) { p.micro_batch /= 2; });
  if (base.world > 1)
    with("all of: train.zero: 2, train.checkpoint_activations: block, train.micro_batch: 1",
         [](auto& p) {
           p.zero = 2;
           p.recompute = stages::Recompute::kBlock;
           p.micro_batch = 1;
         });
  std::string out;
  for (const auto& [what, p] : tries) {
    const int64_t peak = stages::estimate_memory(j.model, p).peak;
    out += "\n    " + what + ": " + stages::format_bytes(double(peak)) +
           (peak <= now.capacity_bytes ? " (fits)" : "");
  }
  out += "\n    more ranks (resources.processes, nodes) divide the sharded terms under train.zero";
  return out;
}

}  // namespace

int64_t gpu_memory_bytes(const std::string& gpu) {
  constexpr int64_t MiB = int64_t(1) << 20;
  static const std::map<std::string, int64_t> kMemory = {
      {"h100", 81559 * MiB}, {"h200", 143771 * MiB}, {"a100", 81920 * MiB},
      {"l40s", 46068 * MiB}, {"a10", 23028 * MiB},   {"v100", 32768 * MiB}};
  auto it = kMemory.find(gpu);
  return it == kMemory.end() ? 0 : it->second;
}

std::optional<MemoryFit> memory_fit(const PlannedJob& j, const CostSettings& cost) {
  if (j.kind != "train") return std::nullopt;
  MemoryFit f;
  f.estimate = stages::estimate_memory(j.model, memory_plan(j));
  if (is_cuda_job(j)) {
    f.device_bytes = gpu_memory_bytes(cost.gpu);
    f.capacity_bytes = static_cast<int64_t>(kGpuUsableFraction * double(f.device_bytes));
  } else {
    f.device_bytes = host_memory_bytes() / std::max(1, j.processes);
    f.capacity_bytes = f.device_bytes;
  }
  f.fits = f.device_bytes == 0 || f.estimate.peak <= f.capacity_bytes;
  return f;
}

std::optional<stages::MemoryEstimate> job_memory_estimate(const Plan& plan, const PlannedJob& j) {
  std::map<std::string, const stages::ModelConfig*> by_checkpoint;
  std::vector<const stages::ModelConfig*> sources;
  for (size_t d : j.deps) {
    const PlannedJob& dep = plan.jobs.at(d);
    if (!dep.produces_model) continue;
    by_checkpoint[dep.dir + "/checkpoint"] = &dep.model;
    sources.push_back(&dep.model);
  }
  if (j.kind == "upcycle" && !sources.empty())
    return stages::estimate_surgery_memory(*sources[0], int64_t(sources.size()), j.model);
  if (j.kind != "eval") return std::nullopt;
  auto group_of = [&](const nlohmann::json& models) {
    std::vector<stages::ModelConfig> group;
    for (const auto& m : models) {
      const auto it = by_checkpoint.find(m.at("checkpoint").get<std::string>());
      if (it != by_checkpoint.end()) group.push_back(*it->second);
    }
    return group;
  };
  std::vector<std::vector<stages::ModelConfig>> groups;
  for (const auto& m : j.spec.value("models", nlohmann::json::array()))
    groups.push_back(group_of(nlohmann::json::array({m})));
  for (const auto& e : j.spec.value("ensembles", nlohmann::json::array()))
    groups.push_back(group_of(e.at("members")));
  return stages::estimate_eval_memory(groups, j.spec.value("max_windows", int64_t(0)));
}

void refuse_oversubscribed_here(const Plan& plan) {
  const int64_t here = host_memory_bytes();
  for (const auto& j : plan.jobs) {
    const auto e = job_memory_estimate(plan, j);
    if (!e || here == 0 || e->peak <= here) continue;
    throw ConfigError("stage " + j.stage + " (" + j.kind + ") does not fit this machine's " +
                          stages::format_bytes(double(here)) + ": the memory model estimates " +
                          stages::describe_memory(*e),
                      "run it on a machine with more memory, or pass --allow-oversubscribe");
  }
}

void refuse_oversubscribed(const Plan& plan, const CostSettings& cost) {
  for (const auto& j : plan.jobs) {
    const auto f = memory_fit(j, cost);
    if (!f || f->fits) continue;
    const std::string where = is_cuda_job(j)
                                  ? "one " + cost.gpu + " (cost.gpu, " +
                                        stages::format_bytes(double(f->device_bytes)) + ", " +
                                        std::to_string(int(kGpuUsableFraction * 100)) + "% usable)"
                                  : "this machine's memory per process";
    throw ConfigError("stage " + j.stage + " does not fit " + where + ": the memory model " +
                          "estimates " + stages::describe_memory(f->estimate) + " per rank, over " +
                          stages::format_bytes(double(f->capacity_bytes)),
                      "settings that would lower it:" + remedies(j, cost) +
                          "\n  or pass --allow-oversubscribe to plan or run it anyway "
                          "(docs/scale.md)");
  }
}

}  // namespace upcycle::runner
