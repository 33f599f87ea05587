// The Slurm executor against a real single-node Slurm (cluster/local_slurm.sh, started by the
// slurm_cluster_start fixture; SLURM_CONF points at it): the CI recipe as an array plus
// dependencies gives the local executor's numbers; a failed stage cancels its dependents and says
// why; recipe values never reach a shell; a runner killed after submitting loses and repeats
// nothing; two ranks through srun match one; a requeued train job resumes from its checkpoint to
// the same losses.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/process.h"
#include "tests/support/run_binary.h"
#include "tests/support/slurm_fixture.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

using testing::count;
using testing::losses;
using testing::seed_recipe;
using SlurmTest = testing::SlurmTest;

const std::string kTiny = UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml";

std::map<std::string, double> results(const std::string& store_path) {
  tracking::Store s(store_path, tracking::Store::Mode::kReadOnly);
  std::map<std::string, double> out;
  for (const auto& row : s.select("SELECT model, task, metric, value FROM v_results").rows) {
    out[std::get<std::string>(row[0]) + " " + std::get<std::string>(row[1]) + " " +
        std::get<std::string>(row[2])] = std::get<double>(row[3]);
  }
  return out;
}

TEST_F(SlurmTest, TinyRecipeAsAnArrayWithDependenciesMatchesTheLocalExecutor) {
  auto local =
      run_binary({UPCYCLE_BINARY, "run", kTiny, "root=local", "store=local.sqlite"}, dir_.path());
  ASSERT_EQ(local.exit_code, 0) << local.output;
  auto slurm = run_binary({UPCYCLE_BINARY, "run", kTiny, "--executor", "slurm", "--wait",
                           "root=slurm", "--store", "slurm.sqlite"},
                          dir_.path());
  ASSERT_EQ(slurm.exit_code, 0) << slurm.output;
  EXPECT_NE(slurm.output.find("7 job(s) queued on Slurm"), std::string::npos) << slurm.output;
  const auto want = results(dir_ / "local.sqlite"), got = results(dir_ / "slurm.sqlite");
  ASSERT_GT(want.size(), 20u);
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [k, v] : want) EXPECT_NEAR(got.at(k), v, 1e-9 * std::abs(v)) << k;
  tracking::Store s(dir_ / "slurm.sqlite", tracking::Store::Mode::kReadOnly);
  auto ids =
      s.select("SELECT stage, scheduler_id FROM jobs WHERE stage LIKE 'experts/%' ORDER BY stage")
          .rows;
  ASSERT_EQ(ids.size(), 2u);
  const std::string a = std::get<std::string>(ids[0][1]), b = std::get<std::string>(ids[1][1]);
  EXPECT_EQ(a.substr(0, a.find('_')), b.substr(0, b.find('_')))
      << a << " " << b << ": the experts are one array";
  EXPECT_EQ(a.substr(a.find('_')), "_0");
  testing::expect_one_attempt_per_job(dir_ / "slurm");
  // sbatch's own output: JOB.out for single jobs, ARRAY_TASK.out for arrays; never the
  // "no array" task id 4294967294.
  int outs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "slurm/slurm")) {
    const std::string name = e.path().filename().string();
    if (name.size() < 4 || name.substr(name.size() - 4) != ".out") continue;
    ++outs;
    EXPECT_EQ(name.find("4294967294"), std::string::npos) << name;
  }
  EXPECT_EQ(outs, 7);
  // Run again: everything is complete, nothing is queued.
  auto again = run_binary({UPCYCLE_BINARY, "run", kTiny, "--executor", "slurm", "root=slurm",
                           "--store", "slurm.sqlite"},
                          dir_.path());
  EXPECT_NE(again.output.find("0 job(s) queued on Slurm, 7 already complete"), std::string::npos)
      << again.output;
}

TEST_F(SlurmTest, AFailedStageCancelsItsDependentsAndStatusSaysWhy) {
  auto r =
      run_binary({UPCYCLE_BINARY, "run", kTiny, "--executor", "slurm", "--wait",
                  "data.domains=[general, code, {name: law, sources: [/nonexistent/*]}, math]"},
                 dir_.path());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  auto st = run_binary({UPCYCLE_BINARY, "status"}, dir_.path());
  EXPECT_NE(st.output.find("run tiny: failed"), std::string::npos) << st.output;
  EXPECT_NE(st.output.find("Slurm state FAILED (exit 1)"), std::string::npos) << st.output;
  EXPECT_EQ(count(st.output, "cancelled: an input job failed"), 6u) << st.output;
  // The failed job's own log says what went wrong; the cancelled ones never ran.
  int logs = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "runs/jobs")) {
    if (!std::filesystem::exists(e.path() / "log.txt")) continue;
    ++logs;
    EXPECT_NE(core::read_file((e.path() / "log.txt").string()).find("no documents found"),
              std::string::npos);
  }
  EXPECT_EQ(logs, 1);
}

TEST_F(SlurmTest, RecipeValuesReachSlurmLiterallyOrAreRefusedNamingTheKey) {
  const std::string touch = dir_ / "touched";
  // A name that would be a command in a shell is refused before anything is queued.
  auto bad = run_binary({UPCYCLE_BINARY, "run", kTiny, "--executor", "slurm",
                         "slurm.partition=$(touch " + touch + ")"},
                        dir_.path());
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("slurm.partition: '$(touch"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("is not a Slurm name"), std::string::npos) << bad.output;
  auto own = run_binary({UPCYCLE_BINARY, "plan", kTiny, "slurm.extra=[--dependency=afterany:1]"},
                        dir_.path());
  EXPECT_NE(own.output.find("is set by upcycle"), std::string::npos) << own.output;
  // Values that go into the job reach it as written: environment values are quoted, options are
  // single argv elements.
  const std::string payload =
      "$(touch " + touch + ") `touch " + touch + "` \"; rm -rf " + touch + "-dir; '";
  core::write_file_atomic(
      dir_ / "r.yaml",
      "name: lit\n"
      "executor: slurm\n"
      "data: { domains: [general], max_bytes: 300k, tokenizer: { vocab: 512, sample_bytes: 50k } "
      "}\n"
      "model: { d_model: 64, layers: 2, heads: 4, ffn_hidden: 128, seq_len: 32 }\n"
      "slurm: { extra: [\"--mail-user=$(touch " +
          touch +
          ")\"] }\n"
          "stages:\n"
          "  data: { kind: prepare }\n"
          "  echo: { kind: command, argv: [sh, -c, 'printf %s \"$PAYLOAD\" > {out}/payload.txt'] "
          "}\n");
  std::filesystem::create_directories(dir_ / "touched-dir");
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--wait",
                       "slurm.env={PAYLOAD: " + nlohmann::json(payload).dump() + "}"},
                      dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::string written;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "runs/jobs")) {
    if (std::filesystem::exists(e.path() / "out/payload.txt"))
      written = core::read_file((e.path() / "out/payload.txt").string());
  }
  EXPECT_EQ(written, payload);
  EXPECT_FALSE(std::filesystem::exists(touch)) << "a recipe value ran as a command";
  EXPECT_TRUE(std::filesystem::exists(dir_ / "touched-dir"));
}

TEST_F(SlurmTest, ARunnerKilledAfterSubmittingLosesAndRepeatsNothing) {
  pid_t runner =
      testing::spawn_binary({UPCYCLE_BINARY, "run", kTiny, "--executor", "slurm", "--wait"},
                            dir_.path(), dir_ / "runner.log");
  // Kill it -9 once it has queued everything (the eval job is queued last).
  bool queued = false;
  for (int i = 0; i < 600 && !queued; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    queued = std::filesystem::exists(dir_ / "runner.log") &&
             core::read_file(dir_ / "runner.log").find("eval: queued") != std::string::npos;
  }
  ASSERT_TRUE(queued) << core::read_file(dir_ / "runner.log");
  ::kill(runner, SIGKILL);
  ::waitpid(runner, nullptr, 0);
  auto resumed = run_binary({UPCYCLE_BINARY, "resume"}, dir_.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("already queued as Slurm job"), std::string::npos)
      << resumed.output;
  // A status pass is one scheduler query however many jobs there are, and it asks for our jobs
  // only (never every user's): count the calls through wrappers around the real commands.
  const std::string bin = dir_ / "bin", calls = dir_ / "calls.log";
  for (const char* cmd : {"scontrol", "squeue", "sacct", "sbatch"}) {
    testing::write_wrapper(bin, cmd,
                           "echo " + std::string(cmd) + " \"$*\" >> '" + calls + "'\nexec " +
                               testing::real_command(cmd) + " \"$@\"\n");
  }
  {
    testing::PathPrefix on_path(bin);
    auto pass = run_binary({UPCYCLE_BINARY, "collect"}, dir_.path());
    ASSERT_EQ(pass.exit_code, 0) << pass.output;
  }
  const std::string log = core::read_file(calls);
  EXPECT_EQ(count(log, "\n"), 1u) << log;
  EXPECT_EQ(log.rfind("squeue --states=all -h --jobs=", 0), 0u) << log;
  auto waited = run_binary({UPCYCLE_BINARY, "wait"}, dir_.path());
  ASSERT_EQ(waited.exit_code, 0) << waited.output;
  tracking::Store s(dir_ / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  EXPECT_EQ(
      std::get<int64_t>(
          s.select("SELECT COUNT(*) FROM jobs WHERE status = 'done' AND attempts = 1").rows[0][0]),
      7);
  EXPECT_EQ(
      std::get<std::string>(s.select("SELECT status FROM runs WHERE name = 'tiny'").rows[0][0]),
      "done");
  testing::expect_one_attempt_per_job(dir_ / "runs");
}

// sbatch can report an error (a socket timeout) after it queued the job. The runner then looks the
// job up by its name and comment instead of submitting it again.
TEST_F(SlurmTest, AnSbatchErrorAfterQueueingDoesNotSubmitTwice) {
  const std::string bin = dir_ / "bin", real = testing::real_command("sbatch");
  // The checks before submitting (--test-only) get through; each submission times out after
  // queueing.
  testing::write_wrapper(bin, "sbatch",
                         "case \"$*\" in *--test-only*) exec " + real + " \"$@\" ;; esac\n" + real +
                             " \"$@\" > /dev/null\necho 'sbatch: error: Socket timed out on "
                             "send/recv operation' >&2\nexit 1\n");
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe());
  testing::ProcessResult r;
  {
    testing::PathPrefix on_path(bin);
    r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm", "slurm.extra=[--hold]"},
                   dir_.path());
  }
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("2 job(s) queued on Slurm"), std::string::npos) << r.output;
  // Each job is in the queue once, under the id the runner recorded.
  tracking::Store s(dir_ / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  for (const auto& row : s.select("SELECT key, scheduler_id FROM jobs").rows) {
    const std::string name = "upc-" + std::get<std::string>(row[0]).substr(0, 16);
    auto q = core::run_process({"squeue", "-h", "--name=" + name, "-o", "%i"});
    EXPECT_EQ(q.out, std::get<std::string>(row[1]).substr(6) + "\n") << name;
  }
  for (const auto& row : s.select("SELECT scheduler_id FROM jobs").rows) {
    core::run_process({"scancel", std::get<std::string>(row[0]).substr(6)});
  }
}

TEST_F(SlurmTest, TwoRanksThroughSrunMatchOneRank) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe(", resources: { processes: 2 }"));
  auto two =
      run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm", "--wait"}, dir_.path());
  ASSERT_EQ(two.exit_code, 0) << two.output;
  auto one = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "stages.seed.resources.processes=1",
                         "root=one", "store=one.sqlite"},
                        dir_.path());
  ASSERT_EQ(one.exit_code, 0) << one.output;
  auto a = losses(dir_ / "runs/store.sqlite", "seed"), b = losses(dir_ / "one.sqlite", "seed");
  ASSERT_EQ(a.size(), 25u);
  ASSERT_EQ(b.size(), a.size());
  for (const auto& [step, loss] : b) EXPECT_NEAR(a.at(step), loss, 1e-5) << "step " << step;
  bool saw_rank1 = false;
  for (const auto& e : std::filesystem::directory_iterator(dir_ / "runs/jobs")) {
    saw_rank1 = saw_rank1 || core::read_file((e.path() / "log.txt").string()).find("rank 1 of 2") !=
                                 std::string::npos;
  }
  EXPECT_TRUE(saw_rank1);
}

TEST_F(SlurmTest, ARequeuedTrainJobResumesFromItsCheckpointToTheSameLosses) {
  core::write_file_atomic(dir_ / "r.yaml", seed_recipe(", checkpoint_every: 20", "200k"));
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--executor", "slurm"}, dir_.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const size_t at = r.output.find("seed: queued as Slurm job ");
  ASSERT_NE(at, std::string::npos) << r.output;
  std::string job;
  for (size_t i = at + 26;
       i < r.output.size() && std::isdigit(static_cast<unsigned char>(r.output[i])); ++i) {
    job += r.output[i];
  }
  // Requeue it once it has run past a checkpoint.
  std::string seed_log;
  for (int i = 0; i < 1200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (const auto& e : std::filesystem::directory_iterator(dir_ / "runs/jobs")) {
      if (std::filesystem::exists(e.path() / "checkpoint"))
        seed_log = (e.path() / "log.txt").string();
    }
    if (!seed_log.empty()) break;
  }
  ASSERT_FALSE(seed_log.empty()) << "the train job never wrote a checkpoint";
  // While it runs, status shows how far it is, and its log says so too.
  auto st = run_binary({UPCYCLE_BINARY, "status"}, dir_.path());
  EXPECT_NE(st.output.find("k tokens ("), std::string::npos) << st.output;
  EXPECT_NE(st.output.find("tok/s, ETA"), std::string::npos) << st.output;
  auto rq = core::run_process({"scontrol", "requeue", job});
  ASSERT_EQ(rq.exit_code, 0) << rq.err;
  // Slurm holds a requeued job for a while (BeginTime); release it now rather than wait.
  for (int i = 0; i < 300; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    auto q = core::run_process({"squeue", "-h", "-j", job, "-o", "%T %r"});
    if (q.out.find("PENDING") != std::string::npos) {
      core::run_process({"scontrol", "update", "JobId=" + job, "StartTime=now"});
      break;
    }
  }
  auto waited = run_binary({UPCYCLE_BINARY, "wait"}, dir_.path());
  ASSERT_EQ(waited.exit_code, 0) << waited.output;
  const std::string log = core::read_file(seed_log);
  EXPECT_NE(log.find("(restart 1)"), std::string::npos) << log;
  EXPECT_NE(log.find("resuming"), std::string::npos) << log;
  EXPECT_NE(log.find("[train] step "), std::string::npos) << log;
  EXPECT_NE(
      core::read_file(std::filesystem::path(seed_log).parent_path() / "attempt").find("restart 1"),
      std::string::npos);
  auto local = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "root=local", "store=local.sqlite"},
                          dir_.path());
  ASSERT_EQ(local.exit_code, 0) << local.output;
  auto requeued = losses(dir_ / "runs/store.sqlite", "seed"),
       straight = losses(dir_ / "local.sqlite", "seed");
  ASSERT_EQ(requeued.size(), straight.size());
  for (const auto& [step, loss] : straight) EXPECT_EQ(requeued.at(step), loss) << "step " << step;
  // The ledger kept both attempts; the job's wall time is their sum, not the last one's.
  tracking::Store s(dir_ / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  auto a = s.select(
      "SELECT restart, status, wall_s FROM v_attempts WHERE stage = 'seed' ORDER BY restart");
  ASSERT_EQ(a.rows.size(), 2u);
  EXPECT_EQ(std::get<std::string>(a.rows[0][1]), "preempted");
  EXPECT_EQ(std::get<std::string>(a.rows[1][1]), "done");
  const double sum = std::get<double>(a.rows[0][2]) + std::get<double>(a.rows[1][2]);
  auto j = s.select("SELECT attempts, wall_s FROM jobs WHERE stage = 'seed'");
  EXPECT_EQ(std::get<int64_t>(j.rows[0][0]), 2);
  EXPECT_NEAR(std::get<double>(j.rows[0][1]), sum, 1e-6);
  auto status = run_binary({UPCYCLE_BINARY, "status"}, dir_.path());
  EXPECT_NE(status.output.find("+"), std::string::npos) << status.output;  // attempt_s: a+b
}

}  // namespace
}  // namespace upcycle
