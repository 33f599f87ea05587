#include "runner/slurm_keys.h"

namespace upcycle::runner {
namespace {

std::map<std::string, std::string> read_env(const YamlReader& env) {
  env.expect_map(env.keys());
  std::map<std::string, std::string> out;
  for (const auto& k : env.keys()) out[k] = env.child(k).str();
  return out;
}

}  // namespace

cluster::SlurmResources parse_slurm(const YamlReader& r, cluster::SlurmResources s) {
  r.expect_map({"partition", "account", "qos", "constraint", "time", "nodes", "gpus_per_node",
                "cpus_per_task", "mem", "exclusive", "extra", "setup", "env", "output", "error",
                "signal_seconds", "max_requeues", "array_throttle", "max_time"});
  s.partition = r.get_str("partition", s.partition);
  s.account = r.get_str("account", s.account);
  s.qos = r.get_str("qos", s.qos);
  s.constraint = r.get_str("constraint", s.constraint);
  s.time = r.get_str("time", s.time);
  s.max_time = r.get_str("max_time", s.max_time);
  s.nodes = static_cast<int>(r.get_integer("nodes", s.nodes, core::kIntRange));
  s.gpus_per_node =
      static_cast<int>(r.get_integer("gpus_per_node", s.gpus_per_node, core::kIntRange));
  s.cpus_per_task =
      static_cast<int>(r.get_integer("cpus_per_task", s.cpus_per_task, core::kIntRange));
  s.mem = r.get_str("mem", s.mem);
  s.exclusive = r.get_bool("exclusive", s.exclusive);
  if (r.has("extra")) s.extra = r.child("extra").strings();
  if (r.has("setup")) s.setup = r.child("setup").strings();
  if (r.has("env")) s.env = read_env(r.child("env"));
  s.output = r.get_str("output", s.output);
  s.error = r.get_str("error", s.error);
  if (r.has("signal_seconds") && r.child("signal_seconds").str() == "auto") {
    s.signal_seconds = cluster::kAutoSignal;
  } else {
    // Never negative from a recipe: -1 is kAutoSignal's spelling inside, not the user's.
    s.signal_seconds =
        static_cast<int>(r.get_integer("signal_seconds", s.signal_seconds, {0, 65535}));
  }
  s.max_requeues = static_cast<int>(r.get_integer("max_requeues", s.max_requeues, core::kIntRange));
  s.array_throttle =
      static_cast<int>(r.get_integer("array_throttle", s.array_throttle, core::kIntRange));
  try {
    cluster::validate(s);
  } catch (const ClusterError& e) {
    // "slurm.KEY: 'value' reason": point at KEY where this section sets it.
    const std::string what = e.what();
    const std::string key = what.substr(6, what.find(':') - 6);
    throw(r.has(key) ? r.child(key) : r).error(what.substr(what.find(':') + 2));
  }
  return s;
}

}  // namespace upcycle::runner
