// The parsers of what Slurm prints, on lines copied from slurm 22.05 (Debian 12) and on odd ones:
// arrays pending and running, signals in exit codes, states with suffixes, values with '=' in them,
// reasons with spaces, garbage.
#include "cluster/slurm_output.h"

#include <gtest/gtest.h>

namespace upcycle::cluster {
namespace {

using core::JobStatus;

// squeue --states=all -h -O kSqueueFields, as slurm 22.05 prints it, and odd lines.
const char* kSqueue =
    "41|COMPLETED|None|0|0|\n"
    "42_[2-3%1]|PENDING|JobArrayTaskLimit|0|0|\n"
    "42_1|RUNNING|None|0|2|\n"
    "42_0|FAILED|NonZeroExitCode|19200|0|\n"  // exit 75, as a wait status
    "44|FAILED|NonZeroExitCode|9|0|\n"        // killed by SIGKILL
    "45|CANCELLED|DependencyNeverSatisfied|0:9|x|\n"
    "47|PENDING|ReqNodeNotAvail, UnavailableNodes:n3|0|0|\n"
    "garbage without fields\n"
    "|RUNNING|None|0|0|\n";

TEST(SlurmOutputTest, SqueueLinesGiveEachIdItsStatus) {
  const auto s = squeue_statuses(
      kSqueue, {"41", "42_3", "42_2", "42_1", "42_0", "44", "45", "46", "42_9", "47", "42"});
  ASSERT_EQ(s.size(), 8u);  // 46, task 9 and the array's own id are not in it
  EXPECT_TRUE(s.at("41").known);
  EXPECT_EQ(s.at("41").status, JobStatus::kDone);
  EXPECT_EQ(s.at("42_3").raw, "PENDING");
  EXPECT_EQ(s.at("42_3").status, JobStatus::kQueued);
  EXPECT_EQ(s.at("42_3").reason, "JobArrayTaskLimit");
  EXPECT_EQ(s.at("42_1").status, JobStatus::kRunning);
  EXPECT_EQ(s.at("42_1").reason, "");  // "None"
  EXPECT_EQ(s.at("42_1").restarts, 2);
  EXPECT_EQ(s.at("42_0").status, JobStatus::kFailed);
  EXPECT_EQ(s.at("42_0").exit_code, 75);
  EXPECT_EQ(s.at("44").exit_code, 137);
  EXPECT_EQ(s.at("45").status, JobStatus::kCancelled);
  EXPECT_EQ(s.at("45").restarts, 0);  // "x": not a number, the default
  EXPECT_EQ(s.at("47").reason, "ReqNodeNotAvail, UnavailableNodes:n3");
}

TEST(SlurmOutputTest, PendingReasonsThatNeverClear) {
  for (const char* r : {"PartitionTimeLimit", "ReqNodeNotAvail, UnavailableNodes:n3",
                        "InvalidAccount", "InvalidQOS", "QOSMaxWallDurationPerJobLimit"}) {
    EXPECT_TRUE(reason_never_clears(r)) << r;
  }
  for (const char* r : {"Priority", "Resources", "Dependency", "QOSMaxJobsPerUserLimit",
                        "JobArrayTaskLimit", "BeginTime", ""}) {
    EXPECT_FALSE(reason_never_clears(r)) << r;
  }
}

TEST(SlurmOutputTest, FieldsKeepTheFirstValueAndEqualsSignsInValues) {
  const auto f = scontrol_fields("JobId=1 Comment=a=b JobId=2 Flag NoValue= Command=/x y");
  EXPECT_EQ(f.at("JobId"), "1");
  EXPECT_EQ(f.at("Comment"), "a=b");
  EXPECT_EQ(f.at("NoValue"), "");
  EXPECT_EQ(f.count("Flag"), 0u);
  EXPECT_TRUE(scontrol_fields("").empty());
}

TEST(SlurmOutputTest, ArrayTaskSpecs) {
  EXPECT_TRUE(array_task_in("0-3%2", 3));
  EXPECT_FALSE(array_task_in("0-3%2", 4));
  EXPECT_TRUE(array_task_in("1,3,5-6", 6));
  EXPECT_FALSE(array_task_in("1,3,5-6", 2));
  EXPECT_TRUE(array_task_in("[0-3%1]", 2));
  EXPECT_FALSE(array_task_in("", 0));
  EXPECT_FALSE(array_task_in("a-b", 0));
  EXPECT_FALSE(array_task_in("99999999999999999999", 1));  // out of range: no task, no wrap
}

TEST(SlurmOutputTest, IntegersAreCheckedNeverWrapped) {
  EXPECT_EQ(slurm_int("137", 0), 137);
  EXPECT_EQ(slurm_int("1:15", 0), 1);
  EXPECT_EQ(slurm_int("4294967297", -1), -1);
  EXPECT_EQ(slurm_int("", 7), 7);
  EXPECT_EQ(slurm_int("12k", 7), 7);  // no suffixes in Slurm's numbers
}

TEST(SlurmOutputTest, SacctLines) {
  const auto s = sacct_statuses(
      "41|COMPLETED|0:0\n42_1|CANCELLED by 0|0:15\n42_2|TIMEOUT|0:1\n"
      "|RUNNING|0:0\ngarbage\n43|OUT_OF_MEMORY|0:125\n");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s.at("41").status, JobStatus::kDone);
  EXPECT_EQ(s.at("42_1").raw, "CANCELLED");
  EXPECT_EQ(s.at("42_1").status, JobStatus::kCancelled);
  EXPECT_EQ(s.at("42_2").status, JobStatus::kFailed);
  EXPECT_EQ(s.at("43").raw, "OUT_OF_MEMORY");
}

TEST(SlurmOutputTest, SbatchAndSqueue) {
  EXPECT_EQ(sbatch_job_id("1234\n"), "1234");
  EXPECT_EQ(sbatch_job_id("1234;cluster-a\n"), "1234");
  EXPECT_EQ(sbatch_job_id("Submitted batch job 1234\n"), "");
  EXPECT_EQ(sbatch_job_id(""), "");
  const std::string q =
      "51|51|upcycle:/runs/jobs/aa\n53|52|upcycle:/runs/jobs/bb\nbroken "
      "line\n54|54|upcycle:/other|x\n";
  EXPECT_EQ(squeue_job_with_comment(q, "upcycle:/runs/jobs/bb"), "52");  // the array's id
  EXPECT_EQ(squeue_job_with_comment(q, "upcycle:/runs/jobs/cc"), std::nullopt);
  EXPECT_EQ(squeue_job_with_comment(q, "upcycle:/other"), std::nullopt);
}

TEST(SlurmOutputTest, StateNames) {
  for (const char* a : {"PENDING", "REQUEUED", "CONFIGURING", "SUSPENDED"})
    EXPECT_EQ(status_of(a), JobStatus::kQueued) << a;
  for (const char* a : {"RUNNING", "COMPLETING", "SIGNALING"})
    EXPECT_EQ(status_of(a), JobStatus::kRunning) << a;
  EXPECT_EQ(status_of("PREEMPTED"), JobStatus::kPreempted);
  EXPECT_EQ(status_of("COMPLETED"), JobStatus::kDone);
  EXPECT_EQ(status_of("CANCELLED+"), JobStatus::kCancelled);
  for (const char* f :
       {"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", ""}) {
    EXPECT_EQ(status_of(f), JobStatus::kFailed) << f;
  }
}

}  // namespace
}  // namespace upcycle::cluster
