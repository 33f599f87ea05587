#include "cluster/slurm_site.h"

#include <future>
#include <regex>
#include <sstream>

#include "cluster/slurm_command.h"
#include "cluster/slurm_output.h"
#include "core/error.h"
#include "core/integer.h"

namespace upcycle::cluster {
namespace {

int64_t number(const std::string& text, const std::string& whole) {
  try {
    return core::parse_integer(text, {0, int64_t(1) << 40}, false);
  } catch (const std::logic_error&) {
    throw ClusterError("'" + whole + "' is not a Slurm time");
  }
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::istringstream in(s);
  for (std::string x; std::getline(in, x, sep);) out.push_back(x);
  return out;
}

int gpus_of(const std::string& gres) {
  int n = 0;
  for (const auto& g : split(gres, ',')) {
    if (g.rfind("gpu", 0) != 0) continue;
    const std::string spec = g.substr(0, g.find('('));  // "gpu:a100:8(S:0-1)"
    n += slurm_int(spec.substr(spec.rfind(':') + 1), 0);
  }
  return n;
}

}  // namespace

std::optional<int64_t> slurm_time_seconds(const std::string& text) {
  if (text == "UNLIMITED" || text == "INFINITE" || text == "NONE") return std::nullopt;
  if (!std::regex_match(text, std::regex("([0-9]+-)?[0-9]+(:[0-9]+){0,2}")))
    throw ClusterError("'" + text + "' is not a Slurm time");
  int64_t days = 0;
  std::string rest = text;
  const size_t dash = text.find('-');
  if (dash != std::string::npos) {
    days = number(text.substr(0, dash), text);
    rest = text.substr(dash + 1);
  }
  std::vector<int64_t> p;
  for (const auto& x : split(rest, ':')) p.push_back(number(x, text));
  int64_t s = 0;
  if (dash != std::string::npos) {  // D-HH, D-HH:MM, D-HH:MM:SS
    s = p[0] * 3600 + (p.size() > 1 ? p[1] * 60 : 0) + (p.size() > 2 ? p[2] : 0);
  } else if (p.size() == 1) {  // minutes
    s = p[0] * 60;
  } else if (p.size() == 2) {  // MM:SS
    s = p[0] * 60 + p[1];
  } else {  // HH:MM:SS
    s = p[0] * 3600 + p[1] * 60 + p[2];
  }
  return days * 86400 + s;
}

std::vector<Partition> parse_partitions(const std::string& out) {
  std::vector<Partition> parts;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("PartitionName=", 0) != 0) continue;
    const auto f = scontrol_fields(line);
    Partition p;
    p.name = f.at("PartitionName");
    p.is_default = f.count("Default") && f.at("Default") == "YES";
    p.state = f.count("State") ? f.at("State") : "UP";
    if (f.count("MaxTime")) p.max_time_s = slurm_time_seconds(f.at("MaxTime"));
    if (f.count("MaxNodes") && f.at("MaxNodes") != "UNLIMITED")
      p.max_nodes = slurm_int(f.at("MaxNodes"), 0);
    parts.push_back(std::move(p));
  }
  return parts;
}

void add_sinfo_nodes(const std::string& out, std::vector<Partition>& partitions) {
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    const auto f = split(line, '|');
    if (f.size() < 5) continue;
    std::string part = f[0];
    if (!part.empty() && part.back() == '*') part.pop_back();
    NodeSize n{f[1], slurm_int(f[2], 0), 0, gpus_of(f[4])};
    try {
      n.mem_mb = core::parse_integer(f[3].substr(0, f[3].find_first_not_of("0123456789")),
                                     {0, int64_t(1) << 40}, false);
    } catch (const std::logic_error&) {
    }
    for (auto& p : partitions) {
      if (p.name == part) p.nodes.push_back(n);
    }
  }
}

std::vector<Partition> query_partitions() {
  // Both at once: each is a round trip to the controller.
  auto partitions = std::async(std::launch::async, [] {
    return slurm_checked({"scontrol", "-o", "show", "partition"}).out;
  });
  const std::string nodes = slurm_checked({"sinfo", "-h", "-N", "-o", "%P|%N|%c|%m|%G"}).out;
  std::vector<Partition> parts = parse_partitions(partitions.get());
  add_sinfo_nodes(nodes, parts);
  return parts;
}

const Partition* find_partition(const std::vector<Partition>& partitions, const std::string& name) {
  for (const auto& p : partitions) {
    if (name.empty() ? p.is_default : p.name == name) return &p;
  }
  return nullptr;
}

}  // namespace upcycle::cluster
