// What a job asks Slurm for, from a recipe's `slurm:` section (defaults) and each stage's `slurm:`
// (overrides, key by key). Every value reaches sbatch as one argv element (no shell), and is
// checked first: names against a character set, numbers against bounds, times and memory against
// Slurm's formats, extra options as `--option[=value]`. Only `setup` lines are shell, by design
// (module loads, sourcing an environment): they are the recipe author's code, like a command
// stage's argv.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace upcycle::cluster {

inline constexpr int kAutoSignal = -1;
inline constexpr int kSignalFloorS = 120;

struct SlurmResources {
  std::string partition, account, qos, constraint;
  /// auto (the cost model's estimate x safety, capped at max_time or the partition's MaxTime, the
  /// rest a planned requeue chain) | minutes | [D-]HH:MM:SS
  std::string time = "auto";
  std::string max_time;  ///< the cap for time: auto; "" = the partition's MaxTime
  int nodes = 1;
  int gpus_per_node = 0;
  int cpus_per_task = 0;  ///< 0: the job's threads
  std::string mem;        ///< e.g. 32G; "" = the partition's default
  bool exclusive = false;
  std::vector<std::string> extra;  ///< more sbatch options, each `--name[=value]`
  std::vector<std::string>
      setup;  ///< shell lines run before the job step (module load ..., source ...)
  std::map<std::string, std::string> env;  ///< exported to the job, values literal (quoted)
  std::string output;  ///< sbatch's own output file; "" = ROOT/slurm/%x-%A_%a.out
  std::string error;   ///< sbatch's own error file; "" = with the output
  /// USR2 this long before the time limit: checkpoint, then requeue. kAutoSignal: from the
  /// measured checkpoint save time of the job's shape (at least kSignalFloorS); 0: no signal.
  int signal_seconds = kAutoSignal;
  /// Requeues after a preemption, per job; a planned chain (time: auto over the cap) adds its own.
  int max_requeues = 3;
  int array_throttle = 0;  ///< at most this many tasks of an array at once (%N); 0 = no cap
};

/// Throws ClusterError naming `slurm.<key>` and the reason for the first value that is not allowed
/// (signal_seconds must be below a set time limit).
void validate(const SlurmResources& r);

/// Seconds of a validated time value; nullopt for auto.
std::optional<int64_t> time_seconds(const std::string& time);

/// The sbatch options (one argv element each) for `r`, with `ntasks` tasks of `threads` CPUs each.
std::vector<std::string> sbatch_options(const SlurmResources& r, int ntasks, int threads);

}  // namespace upcycle::cluster
