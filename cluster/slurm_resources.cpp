#include "cluster/slurm_resources.h"

#include <regex>

#include "cluster/slurm_site.h"
#include "core/error.h"

namespace upcycle::cluster {
namespace {

void require(bool ok, const std::string& key, const std::string& value, const std::string& reason) {
  if (!ok) throw ClusterError("slurm." + key + ": '" + value + "' " + reason);
}

bool matches(const std::string& s, const char* re) { return std::regex_match(s, std::regex(re)); }

bool is_time(const std::string& t) {
  return matches(t, "[0-9]{1,7}|[0-9]{1,7}:[0-9]{2}|([0-9]{1,4}-)?[0-9]{1,4}(:[0-9]{2}){0,2}");
}

void check_name(const std::string& key, const std::string& v) {
  require(v.empty() || matches(v, "[A-Za-z0-9_][A-Za-z0-9_.,:@+=-]{0,127}"), key, v,
          "is not a Slurm name (letters, digits and _ . , : @ + = -)");
}

}  // namespace

void validate(const SlurmResources& r) {
  check_name("partition", r.partition);
  check_name("account", r.account);
  check_name("qos", r.qos);
  require(r.constraint.empty() || matches(r.constraint, "[A-Za-z0-9_.,:@+=&|*()\\[\\]!-]{1,256}"),
          "constraint", r.constraint, "is not a Slurm constraint expression");
  require(r.time == "auto" || is_time(r.time), "time", r.time,
          "is not auto, minutes or [D-]HH:MM:SS");
  require(r.max_time.empty() || is_time(r.max_time), "max_time", r.max_time,
          "is not minutes or [D-]HH:MM:SS");
  require(r.mem.empty() || matches(r.mem, "[0-9]{1,9}[KMGT]?"), "mem", r.mem,
          "is not a size like 32G");
  require(r.nodes >= 1 && r.nodes <= 65536, "nodes", std::to_string(r.nodes),
          "must be in [1, 65536]");
  require(r.gpus_per_node >= 0 && r.gpus_per_node <= 64, "gpus_per_node",
          std::to_string(r.gpus_per_node), "must be in [0, 64]");
  require(r.cpus_per_task >= 0 && r.cpus_per_task <= 4096, "cpus_per_task",
          std::to_string(r.cpus_per_task), "must be in [0, 4096]");
  require(r.signal_seconds == kAutoSignal || (r.signal_seconds >= 0 && r.signal_seconds <= 65535),
          "signal_seconds", std::to_string(r.signal_seconds), "must be auto or in [0, 65535]");
  if (auto t = time_seconds(r.time); t && r.signal_seconds > 0) {
    require(r.signal_seconds < *t, "signal_seconds", std::to_string(r.signal_seconds),
            "must be below the time limit (" + r.time + " = " + std::to_string(*t) +
                " s): the job would be signalled before it starts");
  }
  require(r.max_requeues >= 0 && r.max_requeues <= 1000, "max_requeues",
          std::to_string(r.max_requeues), "must be in [0, 1000]");
  require(r.array_throttle >= 0, "array_throttle", std::to_string(r.array_throttle),
          "must be >= 0");
  for (const auto& e : r.extra) {
    require(matches(e, "--[a-z][a-z0-9-]*(=[^\\n]*)?"), "extra", e,
            "is not one sbatch option --name[=value]");
    const std::string name = e.substr(2, e.find('=') - 2);
    for (const char* own :
         {"job-name", "comment", "output", "error", "dependency", "array", "parsable",
          "kill-on-invalid-dep", "requeue", "signal", "wrap", "ntasks", "nodes"}) {
      require(name != own, "extra", e,
              "is set by upcycle (use the slurm keys, or resources.processes)");
    }
  }
  for (const auto& s : r.setup)
    require(s.find('\n') == std::string::npos, "setup", s, "holds a newline: one line each");
  for (const auto& [k, v] : r.env) {
    require(matches(k, "[A-Za-z_][A-Za-z0-9_]{0,127}"), "env", k,
            "is not an environment variable name");
  }
  require(r.output.find('\n') == std::string::npos, "output", r.output, "holds a newline");
  require(r.error.find('\n') == std::string::npos, "error", r.error, "holds a newline");
}

std::optional<int64_t> time_seconds(const std::string& time) {
  if (time == "auto") return std::nullopt;
  return slurm_time_seconds(time);
}

std::vector<std::string> sbatch_options(const SlurmResources& r, int ntasks, int threads) {
  std::vector<std::string> o;
  auto add = [&](const char* name, const std::string& v) {
    if (!v.empty()) o.push_back(std::string("--") + name + "=" + v);
  };
  add("partition", r.partition);
  add("account", r.account);
  add("qos", r.qos);
  add("constraint", r.constraint);
  if (r.time != "auto") add("time", r.time);
  add("mem", r.mem);
  add("error", r.error);
  add("nodes", std::to_string(r.nodes));
  add("ntasks", std::to_string(ntasks));
  if (r.nodes > 1)
    add("ntasks-per-node", std::to_string(ntasks / r.nodes));  // one rank per GPU on each node
  add("cpus-per-task", std::to_string(r.cpus_per_task > 0 ? r.cpus_per_task : threads));
  if (r.gpus_per_node > 0) add("gpus-per-node", std::to_string(r.gpus_per_node));
  if (r.exclusive) o.push_back("--exclusive");
  const int signal = r.signal_seconds == kAutoSignal ? kSignalFloorS : r.signal_seconds;
  if (signal > 0) add("signal", "B:USR2@" + std::to_string(signal));
  o.push_back("--requeue");
  o.insert(o.end(), r.extra.begin(), r.extra.end());
  return o;
}

}  // namespace upcycle::cluster
