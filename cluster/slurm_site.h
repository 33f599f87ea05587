// What a site allows, read from its controller before anything is submitted: each partition's
// MaxTime, MaxNodes, state and nodes (`scontrol -o show partition`), each node's CPUs, memory and
// GPUs (`sinfo -N`), and Slurm's time formats. The parsers take text, so they are tested on real
// lines without a cluster (tests/cluster/slurm_site_test.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace upcycle::cluster {

struct NodeSize {
  std::string name;
  int cpus = 0;
  int64_t mem_mb = 0;
  int gpus = 0;
};

struct Partition {
  std::string name;
  bool is_default = false;
  std::optional<int64_t> max_time_s;  ///< nullopt: UNLIMITED
  std::optional<int> max_nodes;       ///< nullopt: UNLIMITED
  std::string state;                  ///< UP, DOWN, DRAIN, INACTIVE
  std::vector<NodeSize> nodes;
};

/// Seconds of a Slurm time ("90" minutes, "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS");
/// nullopt for UNLIMITED, INFINITE and NONE. Throws ClusterError naming the text when it is none
/// of these.
std::optional<int64_t> slurm_time_seconds(const std::string& text);

/// The partitions in `scontrol -o show partition` output (without their nodes).
std::vector<Partition> parse_partitions(const std::string& out);

/// `sinfo -h -N -o "%P|%N|%c|%m|%G"` lines added to their partitions' nodes ("gpu:4",
/// "gpu:a100:8(S:0-1)" count; a default partition's name ends in '*' there).
void add_sinfo_nodes(const std::string& out, std::vector<Partition>& partitions);

/// The site's partitions and nodes, from the controller (one scontrol and one sinfo call). Throws
/// ClusterError when the controller does not answer.
std::vector<Partition> query_partitions();

/// The partition a job named `name` ("" = the default) runs in; nullptr when there is none.
const Partition* find_partition(const std::vector<Partition>& partitions, const std::string& name);

}  // namespace upcycle::cluster
