// The runner killed with SIGKILL in the middle of training, then `upcycle resume`: the run
// completes with exactly the rows an uninterrupted run has (no metric row duplicated or missing)
// and, since resume is exact on CPU, the same losses and perplexities bit for bit.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/store_dump.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

// stage/key/step -> value for training metrics that do not depend on timing or on the process's
// history (the measured memory peak), and every eval result.
std::map<std::string, std::string> deterministic_rows(const std::string& store_path) {
  tracking::Store s(store_path, tracking::Store::Mode::kReadOnly);
  std::map<std::string, std::string> out;
  auto m = s.select(
      "SELECT rj.stage, m.key, m.step, m.value FROM metrics m JOIN run_jobs rj ON rj.job_id = "
      "m.job_id "
      "WHERE m.key NOT IN ('tokens_per_s', 'elapsed_s', 'eta_s') AND m.key NOT LIKE 'memory/%'");
  for (const auto& r : m.rows) {
    std::string k =
        testing::cell_text(r[0]) + " " + testing::cell_text(r[1]) + " " + testing::cell_text(r[2]);
    EXPECT_EQ(out.count(k), 0u) << "duplicated metric row " << k;
    out[k] = testing::cell_text(r[3]);
  }
  auto e = s.select("SELECT model, task, metric, value, stderr, n FROM v_results");
  for (const auto& r : e.rows) {
    out["eval " + testing::cell_text(r[0]) + " " + testing::cell_text(r[1]) + " " +
        testing::cell_text(r[2])] =
        testing::cell_text(r[3]) + " " + testing::cell_text(r[4]) + " " + testing::cell_text(r[5]);
  }
  return out;
}

bool any_training_started(const std::string& root) {
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(root + "/jobs", ec)) {
    if (std::filesystem::exists(e.path() / "metrics.jsonl")) return true;
  }
  return false;
}

TEST(ResumeTest, KillNineThenResumeMatchesAnUninterruptedRun) {
  const std::string recipe = UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml";
  testing::TempDir whole, killed;
  auto r = run_binary({UPCYCLE_BINARY, "run", recipe}, whole.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  pid_t pid =
      testing::spawn_binary({UPCYCLE_BINARY, "run", recipe}, killed.path(), killed / "runner.log");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(3);
  while (!any_training_started(killed / "runs") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(any_training_started(killed / "runs")) << "no training job started";
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // into the middle of training
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));

  {
    tracking::Store s(killed / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
    auto st = s.select("SELECT status FROM runs WHERE name = 'tiny'");
    ASSERT_EQ(st.rows.size(), 1u);
    EXPECT_EQ(std::get<std::string>(st.rows[0][0]),
              "running");  // the runner never got to finish it
  }
  auto resumed = run_binary({UPCYCLE_BINARY, "resume"}, killed.path());
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("resuming run tiny"), std::string::npos) << resumed.output;

  auto expected = deterministic_rows(whole / "runs/store.sqlite");
  auto got = deterministic_rows(killed / "runs/store.sqlite");
  EXPECT_GT(expected.size(), 50u);
  EXPECT_EQ(got, expected);

  auto again = run_binary({UPCYCLE_BINARY, "resume"}, killed.path());
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.output.find("nothing to resume"), std::string::npos) << again.output;
}

TEST(ResumeTest, ASecondRunnerOnTheSameStoreIsRefused) {
  testing::TempDir dir;
  const std::string recipe = UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml";
  pid_t pid =
      testing::spawn_binary({UPCYCLE_BINARY, "run", recipe}, dir.path(), dir / "runner.log");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (!std::filesystem::exists(dir / "runs/store.sqlite.lock") &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto second = run_binary({UPCYCLE_BINARY, "run", recipe}, dir.path());
  // Every path to the store reaches its one lock: the lock belongs to the file, not to its name.
  std::filesystem::create_directory_symlink(dir / "runs", dir / "alias");
  std::filesystem::create_hard_link(dir / "runs/store.sqlite", dir / "hard.sqlite");
  auto via_symlink =
      run_binary({UPCYCLE_BINARY, "run", recipe, "--store", "alias/store.sqlite"}, dir.path());
  auto via_hard_link =
      run_binary({UPCYCLE_BINARY, "run", recipe, "--store", "hard.sqlite"}, dir.path());
  ::kill(pid, SIGINT);  // the first stops cleanly
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_EQ(second.exit_code, 1) << second.output;
  EXPECT_NE(
      second.output.find("another upcycle runner is using this store (pid " + std::to_string(pid)),
      std::string::npos)
      << second.output;
  EXPECT_TRUE(WIFEXITED(status) && (WEXITSTATUS(status) == 130 || WEXITSTATUS(status) == 0));
  for (const auto* r : {&via_symlink, &via_hard_link}) {
    EXPECT_EQ(r->exit_code, 1) << r->output;
    EXPECT_NE(r->output.find("another upcycle runner is using this store"), std::string::npos)
        << r->output;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "runs/store.sqlite.lock"))
      << "the runner removes its note";
}

std::string job_dir(const std::string& store_path, const std::string& stage) {
  tracking::Store s(store_path, tracking::Store::Mode::kReadOnly);
  return std::get<std::string>(
      s.select("SELECT dir FROM jobs WHERE stage = ?", {stage}).rows.at(0).at(0));
}

// A finished run of recipes/ci/tiny.yaml in a fresh directory, and its rows, to damage and rerun.
class AfterATinyRunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(run_binary({UPCYCLE_BINARY, "run", recipe}, dir.path()).exit_code, 0);
    before = deterministic_rows(dir / "runs/store.sqlite");
  }
  testing::TempDir dir;
  const std::string recipe = UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml";
  std::map<std::string, std::string> before;
};

// A finished job whose result.json is gone is not done: the rerun reports its final checkpoint
// again (validated) instead of failing or training it twice.
TEST_F(AfterATinyRunTest, AJobWhoseResultWasDeletedIsReportedAgain) {
  const std::string seed_dir = job_dir(dir / "runs/store.sqlite", "seed");
  std::filesystem::remove(seed_dir + "/result.json");
  auto again = run_binary({UPCYCLE_BINARY, "run", recipe}, dir.path());
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("1 jobs done, 6 already complete"), std::string::npos)
      << again.output;
  EXPECT_TRUE(std::filesystem::exists(seed_dir + "/result.json"));
  EXPECT_EQ(deterministic_rows(dir / "runs/store.sqlite"), before);  // nothing trained again
}

// --force replaces a job's results only when the new attempt succeeds: a forced eval that fails (a
// shard gone, an edited tokenizer, an edited checkpoint config) leaves the old rows and files as
// they were; one that succeeds replaces them.
TEST_F(AfterATinyRunTest, AForcedRerunThatFailsKeepsThePreviousResults) {
  const std::string data_dir = job_dir(dir / "runs/store.sqlite", "data");
  const std::string shard = data_dir + "/data/shards/law.test.bin";
  std::filesystem::rename(shard, shard + ".away");  // the forced eval will fail reading it
  auto forced = run_binary({UPCYCLE_BINARY, "run", recipe, "--force", "eval"}, dir.path());
  EXPECT_EQ(forced.exit_code, 1) << forced.output;
  EXPECT_NE(forced.output.find("the forced re-run failed; its previous results stay"),
            std::string::npos)
      << forced.output;
  EXPECT_EQ(deterministic_rows(dir / "runs/store.sqlite"), before);
  std::filesystem::rename(shard + ".away", shard);
  // Files edited since their job wrote them fail the job that reads them, naming the file.
  auto fails_naming = [&](const std::string& path, const std::string& edited,
                          const std::string& expect) {
    const std::string original = core::read_file(path);
    core::write_file_atomic(path, edited);
    auto r = run_binary({UPCYCLE_BINARY, "run", recipe, "--force", "eval"}, dir.path());
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find(path + ": " + expect), std::string::npos) << r.output;
    EXPECT_EQ(deterministic_rows(dir / "runs/store.sqlite"), before);
    core::write_file_atomic(path, original);
  };
  const std::string tokenizer = data_dir + "/data/tokenizer.model";
  fails_naming(tokenizer, core::read_file(tokenizer) + "x", "sha256");
  std::string config_path;
  for (const auto& e :
       std::filesystem::recursive_directory_iterator(job_dir(dir / "runs/store.sqlite", "seed"))) {
    if (e.path().filename() == "config.json") config_path = e.path().string();
  }
  ASSERT_FALSE(config_path.empty());
  std::string config = core::read_file(config_path);
  const size_t at = config.find("\"rope_theta\"");
  ASSERT_NE(at, std::string::npos) << config;
  config.insert(config.find_first_of("0123456789", at), "5");  // 10000 -> 510000
  fails_naming(config_path, config, "its model config is not the one the weights were saved with");
  auto again = run_binary({UPCYCLE_BINARY, "run", recipe}, dir.path());
  EXPECT_NE(again.output.find("0 jobs done, 7 already complete"), std::string::npos)
      << again.output;
  auto replaced = run_binary({UPCYCLE_BINARY, "run", recipe, "--force", "eval"}, dir.path());
  ASSERT_EQ(replaced.exit_code, 0) << replaced.output;
  EXPECT_EQ(deterministic_rows(dir / "runs/store.sqlite"), before);  // the same numbers, recomputed
  for (const auto& e : std::filesystem::directory_iterator(dir / "runs/jobs")) {
    EXPECT_EQ(e.path().string().find(".replaced"), std::string::npos) << e.path();
  }
}

// Trust after a finished run: a result.json edited by hand is refused, naming it; a store from a
// newer upcycle is refused by readers; export and import write only directories of their own.
TEST_F(AfterATinyRunTest, EditedResultsNewerStoresAndOutputDirectories) {
  const std::string store = dir / "runs/store.sqlite";
  const std::string eval = job_dir(store, "eval") + "/result.json";
  const std::string original = core::read_file(eval);
  std::string edited = original;
  const size_t at = edited.find("\"value\": ");
  ASSERT_NE(at, std::string::npos);
  edited.insert(at + 9, "1");  // a perplexity ten times or so larger, by hand
  core::write_file_atomic(eval, edited);
  auto r = run_binary({UPCYCLE_BINARY, "run", recipe}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find(eval + ": the job result does not match its digest"), std::string::npos)
      << r.output;
  EXPECT_EQ(deterministic_rows(store), before);
  core::write_file_atomic(eval, original);

  // A forced re-run killed after moving the old results aside (DIR.replaced) and starting anew: the
  // next runner holds the lock, so nobody is finishing it, and the old results come back.
  const std::string eval_dir = job_dir(store, "eval");
  std::filesystem::rename(eval_dir, eval_dir + ".replaced");
  core::make_dirs(eval_dir);
  core::write_file_atomic(eval_dir + "/log.txt", "half an attempt\n");
  auto restored = run_binary({UPCYCLE_BINARY, "run", recipe}, dir.path());
  EXPECT_EQ(restored.exit_code, 0) << restored.output;
  EXPECT_NE(restored.output.find("eval: an interrupted forced re-run; the previous results stay"),
            std::string::npos)
      << restored.output;
  EXPECT_NE(restored.output.find("0 jobs done, 7 already complete"), std::string::npos)
      << restored.output;
  EXPECT_FALSE(std::filesystem::exists(eval_dir + ".replaced"));
  EXPECT_EQ(core::read_file(eval), original);
  EXPECT_EQ(deterministic_rows(store), before);

  std::filesystem::copy_file(store, dir / "future.sqlite");
  {
    tracking::Store s(dir / "future.sqlite");
    s.select("PRAGMA user_version = 99");
  }
  for (const char* cmd : {"status", "query"}) {
    auto f = run_binary({UPCYCLE_BINARY, cmd, "--store", "future.sqlite"}, dir.path());
    EXPECT_EQ(f.exit_code, 1) << f.output;
    EXPECT_NE(f.output.find("future.sqlite: schema version 99 is newer than this upcycle's"),
              std::string::npos)
        << f.output;
  }

  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), UPCYCLE_BINARY);
    return run_binary(args, dir.path());
  };
  ASSERT_EQ(run({"export", "tiny/bam_dm", "--format", "native", "--out", "hf"}).exit_code, 0);
  auto again = run({"export", "tiny/bam_dm", "--format", "native", "--out", "hf"});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.output.find("hf: exists (an earlier upcycle output); give --force to replace it"),
            std::string::npos)
      << again.output;
  EXPECT_EQ(
      run({"export", "tiny/bam_dm", "--format", "native", "--out", "hf", "--force"}).exit_code, 0);
  core::make_dirs(dir / "mine");
  core::write_file_atomic(dir / "mine/notes.md", "mine");
  auto over_mine = run({"export", "tiny/bam_dm", "--format", "native", "--out", "mine", "--force"});
  EXPECT_EQ(over_mine.exit_code, 1);
  EXPECT_NE(over_mine.output.find("was not written by upcycle"), std::string::npos)
      << over_mine.output;
  EXPECT_EQ(core::read_file(dir / "mine/notes.md"), "mine");
  auto over_source = run({"import", "hf", "--out", "hf", "--force"});
  EXPECT_EQ(over_source.exit_code, 1);
  EXPECT_NE(over_source.output.find("it is the checkpoint it imports"), std::string::npos)
      << over_source.output;
  ASSERT_EQ(run({"import", "hf", "--out", "back"}).exit_code, 0);
  EXPECT_EQ(run({"import", "hf", "--out", "back"}).exit_code, 1);
  EXPECT_EQ(run({"import", "hf", "--out", "back", "--force"}).exit_code, 0);
  EXPECT_TRUE(std::filesystem::exists(dir / "back/config.json"));
  EXPECT_TRUE(std::filesystem::exists(dir / "hf/config.json"));
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    const std::string name = e.path().filename().string();
    EXPECT_EQ(name.find(".tmp."), std::string::npos) << "a temp was left: " << name;
    EXPECT_EQ(name.find(".old."), std::string::npos) << "an old copy was left: " << name;
  }
}

// A job killed by a signal is reported as such, and the jobs that do not need it still run.
TEST(ResumeTest, AJobKilledBySignalIsNamedAndIndependentJobsGoOn) {
  testing::TempDir dir;
  const std::string recipe = UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml";
  pid_t runner =
      testing::spawn_binary({UPCYCLE_BINARY, "run", recipe, "stages.experts.budget.tokens=600k"},
                            dir.path(), dir / "runner.log");
  // Kill experts/code -9 once it runs; experts/math does not need it and finishes.
  std::string pid;
  for (int i = 0; i < 1200 && pid.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!std::filesystem::exists(dir / "runs/store.sqlite")) continue;
    try {
      tracking::Store s(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
      auto rows =
          s.select(
               "SELECT scheduler_id FROM jobs WHERE stage = 'experts/code' AND status = 'running'")
              .rows;
      if (!rows.empty()) pid = std::get<std::string>(rows[0][0]);
    } catch (const std::exception&) {
    }
  }
  ASSERT_FALSE(pid.empty()) << core::read_file(dir / "runner.log");
  ::kill(std::stoi(pid), SIGKILL);
  int status = 0;
  ::waitpid(runner, &status, 0);
  const std::string log = core::read_file(dir / "runner.log");
  EXPECT_NE(log.find("experts/code: failed (killed by signal 9 (SIGKILL))"), std::string::npos)
      << log;
  EXPECT_NE(log.find("experts/math: done"), std::string::npos) << log;
  EXPECT_NE(log.find("bam: not run, an input failed"), std::string::npos) << log;
  auto st = run_binary({UPCYCLE_BINARY, "status"}, dir.path());
  EXPECT_NE(st.output.find("killed by signal 9 (SIGKILL)"), std::string::npos) << st.output;
}

}  // namespace
}  // namespace upcycle
