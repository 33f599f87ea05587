// Slurm operations under a shared site's rules, against the local cluster of
// cluster/local_slurm.sh (partitions local, short with MaxTime=2 and multi with two nodes whose
// names resolve nowhere; EnforcePartLimits=ALL): refusals before any sbatch, time: auto capped
// into a requeue chain, a cancel that stops, a runner killed right after sbatch, a pending reason
// that never clears, a controller that goes away during `wait`, and two nodes by address.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/process.h"
#include "tests/support/run_binary.h"
#include "tests/support/slurm_fixture.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;
using testing::seed_recipe;
using SlurmOpsTest = testing::SlurmTest;

const std::string kLocalSlurm = UPCYCLE_SOURCE_DIR "/cluster/local_slurm.sh";

std::string one(const std::string& store, const std::string& sql) {
  tracking::Store s(store, tracking::Store::Mode::kReadOnly);
  auto rs = s.select(sql);
  if (rs.rows.empty()) return "";
  const auto& c = rs.rows[0][0];
  if (std::holds_alternative<int64_t>(c)) return std::to_string(std::get<int64_t>(c));
  return tracking::text_of(c);
}

size_t lines_of(const std::string& path) {
  std::ifstream in(path);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

// The job directory of `stage` (the store's).
std::string job_dir(const std::string& store, const std::string& stage) {
  return one(store, "SELECT dir FROM jobs WHERE stage = '" + stage + "'");
}

TEST_F(SlurmOpsTest, WhatThePartitionForbidsIsRefusedBeforeAnySbatch) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe());
  // plan checks the whole DAG against the site, naming stage, limit and value.
  auto plan = run_binary({UPCYCLE_BINARY, "plan", "r.yaml", "--executor", "slurm",
                          "slurm.partition=short", "stages.seed.slurm.time=5"},
                         dir_.path());
  EXPECT_EQ(plan.exit_code, 1) << plan.output;
  EXPECT_NE(plan.output.find("seed: time 5 exceeds partition short's MaxTime 0-00:02:00"),
            std::string::npos)
      << plan.output;
  EXPECT_EQ(plan.output.find("data: time"), plan.output.find("data: time: the partition's"))
      << plan.output;
  // run refuses the same before its first sbatch: the data job, which the site would accept, is
  // not queued either (no half DAG).
  auto run = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm",
                         "slurm.partition=short", "stages.seed.slurm.time=5"},
                        dir_.path());
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("nothing was submitted"), std::string::npos) << run.output;
  const std::string store = dir_ / "runs/store.sqlite";
  EXPECT_EQ(one(store, "SELECT COUNT(*) FROM jobs WHERE scheduler_id LIKE 'slurm:%'"), "0");
  EXPECT_EQ(one(store, "SELECT status FROM runs"), "failed");
  // What only sbatch knows (a node outside the partition) is found by sbatch --test-only.
  auto test_only = run_binary({UPCYCLE_BINARY, "plan", "r.yaml", "--executor", "slurm",
                               "stages.seed.slurm.extra=[--nodelist=n1]"},
                              dir_.path());
  EXPECT_EQ(test_only.exit_code, 1) << test_only.output;
  EXPECT_NE(test_only.output.find("seed: sbatch --test-only: "), std::string::npos)
      << test_only.output;
  // A signal later than the time limit is a recipe error at its key.
  auto signal = run_binary(
      {UPCYCLE_BINARY, "plan", "r.yaml", "slurm.time=2", "slurm.signal_seconds=150"}, dir_.path());
  EXPECT_EQ(signal.exit_code, 1) << signal.output;
  EXPECT_NE(signal.output.find("slurm.signal_seconds: '150' must be below the time limit"),
            std::string::npos)
      << signal.output;
}

TEST_F(SlurmOpsTest, TimeAutoIsCappedAtMaxTimeAndTheRestBecomesARequeueChain) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe());
  // cost.cpu_flops makes the estimate (10 min, the floor) longer than short's MaxTime (2 min).
  auto plan = run_binary({UPCYCLE_BINARY, "plan", "r.yaml", "--executor", "slurm",
                          "slurm.partition=short", "cost.cpu_flops=1e9"},
                         dir_.path());
  ASSERT_EQ(plan.exit_code, 0) << plan.output;
  // Each 2-minute link is signalled 60 s before its end (half the limit without a measured
  // save) and spends 60 s starting: 60 s of training each, 10 links for 600 s.
  EXPECT_NE(plan.output.find("seed: time 0-00:02:00 (the cap) x a chain of 10 jobs for an "
                             "estimate of 0-00:10:00 (mfu), USR2 60 s before it"),
            std::string::npos)
      << plan.output;
  EXPECT_NE(plan.output.find("requeues up to 12"), std::string::npos) << plan.output;  // 3 + 9
  // slurm.max_time caps below the partition's limit.
  auto capped = run_binary({UPCYCLE_BINARY, "plan", "r.yaml", "--executor", "slurm",
                            "slurm.max_time=5", "cost.cpu_flops=1e9"},
                           dir_.path());
  ASSERT_EQ(capped.exit_code, 0) << capped.output;
  EXPECT_NE(capped.output.find("seed: time 0-00:05:00 (the cap) x a chain of"), std::string::npos)
      << capped.output;
}

TEST_F(SlurmOpsTest, CancelStopsARunningTrainJobForGood) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe(", checkpoint_every: 20", "2M"));
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm"}, dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string store = dir_ / "runs/store.sqlite";
  std::string dir;
  for (int i = 0; i < 1200 && (dir.empty() || !std::filesystem::exists(dir + "/checkpoint")); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (dir.empty()) dir = job_dir(store, "seed");
  }
  ASSERT_TRUE(std::filesystem::exists(dir + "/checkpoint")) << "the train job never checkpointed";
  const std::string name =
      "upc-" + one(store, "SELECT substr(key, 1, 16) FROM jobs WHERE stage = 'seed'");
  auto cancel = run_binary({UPCYCLE_BINARY, "cancel"}, dir_.path());
  ASSERT_EQ(cancel.exit_code, 0) << cancel.output;
  const size_t metrics = lines_of(dir + "/metrics.jsonl");
  std::this_thread::sleep_for(std::chrono::seconds(30));
  // It did not requeue itself: nothing of it in the queue, no step logged since.
  EXPECT_EQ(core::run_process({"squeue", "-h", "--name=" + name}).out, "");
  EXPECT_EQ(lines_of(dir + "/metrics.jsonl"), metrics);
  EXPECT_EQ(one(store, "SELECT status FROM jobs WHERE stage = 'seed'"), "cancelled");
  EXPECT_EQ(one(store, "SELECT status FROM runs"), "cancelled");
  EXPECT_EQ(one(store, "SELECT status FROM v_attempts WHERE stage = 'seed'"), "cancelled");
  const std::string log = core::read_file(dir + "/log.txt");
  EXPECT_NE(log.find("[upcycle] cancelled by upcycle cancel"), std::string::npos) << log;
  EXPECT_EQ(log.find("requeueing"), std::string::npos) << log;
  // A later run starts it again from its checkpoint (the mark is gone).
  auto status = run_binary({UPCYCLE_BINARY, "status"}, dir_.path());
  EXPECT_NE(status.output.find("cancelled by `upcycle cancel`"), std::string::npos)
      << status.output;
}

// The window between sbatch returning and the store recording the id: an sbatch that kills its
// caller (the runner) right after it queued the job. The next run finds the job by its name and
// comment instead of submitting it again.
TEST_F(SlurmOpsTest, ARunnerKilledRightAfterSbatchSubmitsNothingTwice) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe());
  const std::string bin = dir_ / "bin";
  testing::write_wrapper(bin, "sbatch",
                         "out=\"$(" + testing::real_command("sbatch") +
                             " \"$@\")\"; rc=$?\nprintf '%s\\n' \"$out\"\n"
                             "case \"$*\" in *--test-only*) exit $rc ;; esac\n"
                             "kill -9 $PPID\nexit $rc\n");
  {
    testing::PathPrefix on_path(bin);
    auto killed = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm"}, dir_.path());
    ASSERT_NE(killed.exit_code, 0) << killed.output;
  }
  const std::string store = dir_ / "runs/store.sqlite";
  EXPECT_EQ(one(store, "SELECT status FROM jobs WHERE stage = 'data'"), "submitting");
  auto resumed = run_binary({UPCYCLE_BINARY, "resume", "--wait"}, dir_.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("data: found as Slurm job"), std::string::npos) << resumed.output;
  EXPECT_EQ(one(store, "SELECT COUNT(*) FROM jobs WHERE status = 'done' AND attempts = 1"), "2");
  testing::expect_one_attempt_per_job(dir_ / "runs");
}

// A refusal only the controller gives at submission (an account rule, say) half-way through the
// DAG: what this pass queued is withdrawn, so no half DAG is left running, and the run fails.
TEST_F(SlurmOpsTest, ASubmissionRefusedHalfWayWithdrawsWhatWasQueued) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe());
  const std::string bin = dir_ / "bin", real = testing::real_command("sbatch");
  // The second real submission is refused; the checks (--test-only) and the first go through.
  testing::write_wrapper(
      bin, "sbatch",
      "case \"$*\" in *--test-only*) exec " + real + " \"$@\" ;; esac\n" + "n=\"" + dir_.path() +
          "/submissions\"\necho x >> \"$n\"\n"
          "if [ \"$(wc -l < \"$n\")\" -ge 2 ]; then\n"
          "  echo 'sbatch: error: Batch job submission failed: Invalid account or "
          "account/partition combination specified' >&2; exit 1\nfi\nexec " +
          real + " \"$@\"\n");
  testing::ProcessResult r;
  {
    testing::PathPrefix on_path(bin);
    r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm"}, dir_.path());
  }
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("Invalid account"), std::string::npos) << r.output;
  const std::string store = dir_ / "runs/store.sqlite";
  const std::string data = one(store, "SELECT substr(key, 1, 16) FROM jobs WHERE stage = 'data'");
  EXPECT_EQ(core::run_process({"squeue", "-h", "--name=upc-" + data}).out, "");
  EXPECT_EQ(one(store, "SELECT status FROM jobs WHERE stage = 'data'"), "cancelled");
  EXPECT_NE(one(store, "SELECT status FROM runs"), "running");
  // Run again with a working sbatch: everything is submitted and completes.
  auto again =
      run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm", "--wait"}, dir_.path());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_EQ(one(store, "SELECT COUNT(*) FROM jobs WHERE status = 'done'"), "2");
}

// A job that can never start (its node is drained) fails `wait` with the reason, and its
// dependents are cancelled.
TEST_F(SlurmOpsTest, APendingReasonThatNeverClearsFailsWaitWithIt) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe());
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm",
                       "slurm.partition=multi", "slurm.extra=[--nodelist=n1, --hold]"},
                      dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  struct Resume {
    ~Resume() { core::run_process({"scontrol", "update", "NodeName=n1", "State=RESUME"}); }
  } resume;
  auto drain = core::run_process(
      {"scontrol", "update", "NodeName=n1", "State=DRAIN", "Reason=upcycle-test"});
  ASSERT_EQ(drain.exit_code, 0) << drain.err;
  const std::string store = dir_ / "runs/store.sqlite";
  for (const char* stage : {"data", "seed"}) {
    const std::string id =
        one(store,
            std::string("SELECT substr(scheduler_id, 7) FROM jobs WHERE stage = '") + stage + "'");
    ASSERT_EQ(core::run_process({"scontrol", "release", id}).exit_code, 0) << stage;
  }
  auto waited = run_binary({UPCYCLE_BINARY, "wait"}, dir_.path());
  EXPECT_EQ(waited.exit_code, 1) << waited.output;
  EXPECT_NE(waited.output.find("data: pending forever: ReqNodeNotAvail"), std::string::npos)
      << waited.output;
  EXPECT_EQ(one(store, "SELECT status FROM jobs WHERE stage = 'data'"), "failed");
  EXPECT_EQ(one(store, "SELECT status FROM jobs WHERE stage = 'seed'"), "cancelled");
}

TEST_F(SlurmOpsTest, WaitRidesOutAControllerThatGoesAway) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe("", "100k"));
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm"}, dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  ASSERT_EQ(core::run_process({kLocalSlurm, "stop-controller", cluster_dir()}).exit_code, 0);
  struct Restart {
    ~Restart() { core::run_process({kLocalSlurm, "start-controller", cluster_dir()}); }
  } restart;
  // status shows what the store last saw and says why it is not newer.
  auto status = run_binary({UPCYCLE_BINARY, "status"}, dir_.path());
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("the Slurm controller is unreachable"), std::string::npos)
      << status.output;
  EXPECT_NE(status.output.find("| seed "), std::string::npos) << status.output;
  const pid_t wait =
      testing::spawn_binary({UPCYCLE_BINARY, "wait"}, dir_.path(), dir_ / "wait.log");
  std::this_thread::sleep_for(std::chrono::seconds(40));
  ASSERT_EQ(core::run_process({kLocalSlurm, "start-controller", cluster_dir()}).exit_code, 0);
  int rc = -1;
  ASSERT_EQ(::waitpid(wait, &rc, 0), wait);
  const std::string log = core::read_file(dir_ / "wait.log");
  EXPECT_TRUE(WIFEXITED(rc) && WEXITSTATUS(rc) == 0) << log;
  EXPECT_NE(log.find("controller unreachable since "), std::string::npos) << log;
  EXPECT_NE(log.find("the Slurm controller answers again"), std::string::npos) << log;
  EXPECT_EQ(one(dir_ / "runs/store.sqlite", "SELECT COUNT(*) FROM jobs WHERE status = 'done'"),
            "2");
}

// Two nodes (n1, n2) whose names resolve nowhere: rank 0's address comes from NodeAddr. torchrun's
// variables in the submitting shell do not reach the job.
TEST_F(SlurmOpsTest, TwoNodesByAddressMatchOneProcess) {
  core::write_file_atomic(dir_ / "r.yaml",
                          seed_recipe(", resources: { processes: 2 }, slurm: { nodes: 2 }"));
  ::setenv("RANK", "7", 1);
  ::setenv("WORLD_SIZE", "9", 1);
  ::setenv("MASTER_ADDR", "nowhere.invalid", 1);
  ::setenv("TORCHELASTIC_RUN_ID", "stale", 1);
  auto two = run_binary(
      {UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm", "--wait", "slurm.partition=multi"},
      dir_.path());
  for (const char* v : {"RANK", "WORLD_SIZE", "MASTER_ADDR", "TORCHELASTIC_RUN_ID"}) ::unsetenv(v);
  ASSERT_EQ(two.exit_code, 0) << two.output;
  const std::string seed_log =
      core::read_file(job_dir(dir_ / "runs/store.sqlite", "seed") + "/log.txt");
  EXPECT_NE(seed_log.find("MASTER_ADDR 127.0.0.1"), std::string::npos) << seed_log;
  EXPECT_NE(seed_log.find("rank 1 of 2"), std::string::npos) << seed_log;
  auto one_process =
      run_binary({UPCYCLE_BINARY, "run", "r.yaml", "stages.seed.resources.processes=1",
                  "stages.seed.slurm.nodes=1", "root=one", "store=one.sqlite"},
                 dir_.path());
  ASSERT_EQ(one_process.exit_code, 0) << one_process.output;
  auto a = testing::losses(dir_ / "runs/store.sqlite", "seed"),
       b = testing::losses(dir_ / "one.sqlite", "seed");
  ASSERT_EQ(a.size(), 25u);
  ASSERT_EQ(b.size(), a.size());
  for (const auto& [step, loss] : b) EXPECT_NEAR(a.at(step), loss, 1e-5) << "step " << step;
}

}  // namespace
}  // namespace upcycle
