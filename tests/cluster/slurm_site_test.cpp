// What a site allows, parsed from scontrol and sinfo output copied from slurm 22.05 (the local
// cluster of cluster/local_slurm.sh, and a GPU site's lines), and Slurm's time formats.
#include "cluster/slurm_site.h"

#include <gtest/gtest.h>

#include "core/error.h"

namespace upcycle::cluster {
namespace {

TEST(SlurmSiteTest, TimeFormats) {
  EXPECT_EQ(slurm_time_seconds("90"), 5400);           // minutes
  EXPECT_EQ(slurm_time_seconds("2:30"), 150);          // MM:SS
  EXPECT_EQ(slurm_time_seconds("00:02:00"), 120);      // HH:MM:SS
  EXPECT_EQ(slurm_time_seconds("1-00:00:00"), 86400);  // D-HH:MM:SS
  EXPECT_EQ(slurm_time_seconds("2-12"), 2 * 86400 + 12 * 3600);
  EXPECT_EQ(slurm_time_seconds("1-01:30"), 86400 + 3600 + 1800);
  EXPECT_EQ(slurm_time_seconds("UNLIMITED"), std::nullopt);
  EXPECT_EQ(slurm_time_seconds("INFINITE"), std::nullopt);
  for (const char* bad : {"", "1h", "-5", "1:2:3:4", "99999999999999999999"})
    EXPECT_THROW(slurm_time_seconds(bad), ClusterError) << bad;
}

TEST(SlurmSiteTest, PartitionsAndTheirNodes) {
  auto parts = parse_partitions(
      "PartitionName=local AllowGroups=ALL Default=YES MaxNodes=UNLIMITED MaxTime=UNLIMITED "
      "MinNodes=0 Nodes=vm State=UP TotalCPUs=2 TotalNodes=1\n"
      "PartitionName=short Default=NO MaxNodes=2 MaxTime=00:02:00 Nodes=n[1-2] State=UP\n"
      "PartitionName=gpu MaxTime=2-00:00:00 MaxNodes=UNLIMITED State=DRAIN\n"
      "not a partition line\n");
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TRUE(parts[0].is_default);
  EXPECT_EQ(parts[0].max_time_s, std::nullopt);
  EXPECT_EQ(parts[0].max_nodes, std::nullopt);
  EXPECT_EQ(parts[1].max_time_s, 120);
  EXPECT_EQ(parts[1].max_nodes, 2);
  EXPECT_EQ(parts[2].max_time_s, 2 * 86400);
  EXPECT_EQ(parts[2].state, "DRAIN");
  add_sinfo_nodes(
      "local*|vm|2|21694|(null)\nshort|n1|2|1000|(null)\nshort|n2|4|2000+|(null)\n"
      "gpu|g1|64|512000|gpu:h100:8(S:0-1),tmpdisk:100\nbroken\n",
      parts);
  ASSERT_EQ(parts[0].nodes.size(), 1u);
  EXPECT_EQ(parts[0].nodes[0].mem_mb, 21694);
  ASSERT_EQ(parts[1].nodes.size(), 2u);
  EXPECT_EQ(parts[1].nodes[1].cpus, 4);
  EXPECT_EQ(parts[1].nodes[1].mem_mb, 2000);
  ASSERT_EQ(parts[2].nodes.size(), 1u);
  EXPECT_EQ(parts[2].nodes[0].gpus, 8);
  EXPECT_EQ(find_partition(parts, "")->name, "local");
  EXPECT_EQ(find_partition(parts, "short")->name, "short");
  EXPECT_EQ(find_partition(parts, "nope"), nullptr);
}

}  // namespace
}  // namespace upcycle::cluster
