// The parsers of what Slurm prints, on lines copied from slurm 22.05 (Debian 12) and on odd ones:
// arrays pending and running, signals in exit codes, states with suffixes, values with '=' in them,
// garbage.
#include "cluster/slurm_output.h"

#include <gtest/gtest.h>

namespace upcycle::cluster {
namespace {

const char* kScontrol =
    "JobId=41 JobName=upc-aaaa UserId=root(0) GroupId=root(0) Priority=1 JobState=COMPLETED "
    "Reason=None "
    "Dependency=(null) Requeue=1 Restarts=0 ExitCode=0:0 Comment=upcycle:/runs/jobs/aa/aaaa "
    "Command=/runs/slurm/upc-aaaa.sbatch WorkDir=/work dir with spaces\n"
    "JobId=42 ArrayJobId=42 ArrayTaskId=2-3%1 JobName=upc-bbbb JobState=PENDING "
    "Reason=JobArrayTaskLimit "
    "Restarts=0 ExitCode=0:0\n"
    "JobId=43 ArrayJobId=42 ArrayTaskId=1 JobName=upc-bbbb JobState=RUNNING Reason=None Restarts=2 "
    "ExitCode=0:0\n"
    "JobId=44 ArrayJobId=42 ArrayTaskId=0 JobName=upc-bbbb JobState=FAILED Reason=NonZeroExitCode "
    "Restarts=0 ExitCode=75:0\n"
    "JobId=45 JobName=upc-cccc JobState=CANCELLED Reason=DependencyNeverSatisfied ExitCode=0:9 "
    "Restarts=x\n"
    "   Continuation lines of a non -o listing are ignored\n";

TEST(SlurmOutputTest, ScontrolLinesGiveEachIdItsState) {
  const auto s =
      scontrol_statuses(kScontrol, {"41", "42_3", "42_2", "42_1", "42_0", "45", "46", "42_9"});
  ASSERT_EQ(s.size(), 6u);  // 46 and task 9 are unknown to the controller
  EXPECT_EQ(s.at("41").state, SlurmState::kDone);
  EXPECT_EQ(s.at("42_3").raw, "PENDING");
  EXPECT_EQ(s.at("42_3").reason, "JobArrayTaskLimit");
  EXPECT_EQ(s.at("42_2").state, SlurmState::kActive);
  EXPECT_EQ(s.at("42_1").restarts, 2);
  EXPECT_EQ(s.at("42_0").state, SlurmState::kFailed);
  EXPECT_EQ(s.at("42_0").exit_code, 75);
  EXPECT_EQ(s.at("45").state, SlurmState::kCancelled);
  EXPECT_EQ(s.at("45").restarts, 0);  // "Restarts=x": not a number, the default
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
  EXPECT_EQ(s.at("41").state, SlurmState::kDone);
  EXPECT_EQ(s.at("42_1").raw, "CANCELLED");
  EXPECT_EQ(s.at("42_1").state, SlurmState::kCancelled);
  EXPECT_EQ(s.at("42_2").state, SlurmState::kFailed);
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
  for (const char* a : {"PENDING", "RUNNING", "REQUEUED", "PREEMPTED", "COMPLETING", "SUSPENDED"}) {
    EXPECT_EQ(state_of(a), SlurmState::kActive) << a;
  }
  EXPECT_EQ(state_of("COMPLETED"), SlurmState::kDone);
  EXPECT_EQ(state_of("CANCELLED+"), SlurmState::kCancelled);
  for (const char* f :
       {"FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", ""}) {
    EXPECT_EQ(state_of(f), SlurmState::kFailed) << f;
  }
}

}  // namespace
}  // namespace upcycle::cluster
