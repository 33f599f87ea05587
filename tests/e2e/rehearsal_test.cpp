// `upcycle run RECIPE --rehearse`: the 590M paper recipe itself, with only its width cut (d_model,
// heads, FFN, depth, vocabulary) so that the path runs in a minute: every stage once, on the mini
// corpora's tokens since the recipe's corpora are not here, into runs/rehearsal/ beside no real
// store; every train, surgery and eval job stores the memory model's estimate beside its measured
// peak; the final checkpoints hold no optimizer state; the BAM model is exported and reloaded
// equal. The full-width rehearsal (scripts/rehearse.sh) is recorded in docs/scale.md. And what a
// rehearsal refuses: an override of the width, and (by the memory model, before anything runs)
// the 2B recipe on a machine of this size.
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

namespace fs = std::filesystem;
using testing::run_binary;

const std::string kPaper = std::string(UPCYCLE_SOURCE_DIR) + "/recipes/paper/";

// The 590M recipe with a narrow model: the same stages, surgery, eval, data and settings.
std::string narrow_590m() {
  std::string text = core::read_file(kPaper + "bam_590m.yaml");
  const std::vector<std::pair<std::string, std::string>> cuts = {
      {"d_model: 1024", "d_model: 64"},
      {"layers: 6", "layers: 2"},
      {"heads: 8", "heads: 4"},
      {"kv_heads: 8", "kv_heads: 4"},
      {"ffn_hidden: 2048", "ffn_hidden: 128"},
      {"vocab: 256000", "vocab: 8192"}};
  for (const auto& [from, to] : cuts) {
    const size_t at = text.find(from);
    if (at == std::string::npos) {
      ADD_FAILURE() << "bam_590m.yaml no longer has '" << from << "'";
      continue;
    }
    text.replace(at, from.size(), to);
  }
  return text;
}

double metric(tracking::Store& store, const std::string& dir, const std::string& key) {
  const auto rs = store.select(
      "SELECT m.value FROM metrics m JOIN jobs j ON j.id = m.job_id WHERE j.dir = ? AND m.key = ? "
      "ORDER BY m.step DESC LIMIT 1",
      {dir, key});
  return rs.rows.empty() ? 0.0 : tracking::number_of(rs.rows[0][0]);
}

TEST(RehearsalTest, TheNarrowed590MRecipeRunsEveryStageAndReportsMemory) {
  testing::TempDir tmp;
  core::write_file_atomic(tmp / "bam_590m_narrow.yaml", narrow_590m());
  const auto r =
      run_binary({UPCYCLE_BINARY, "run", "bam_590m_narrow.yaml", "--rehearse", "model.seq_len=32",
                  "train.micro_batch=1", "executor=local", "--no-report"},
                 tmp.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* says : {"the recipe's data is not on this machine",
                           "batch_size 512 -> 1 (one micro-batch per step): seed, experts",
                           "resources.processes 8 -> 1: seed, experts",
                           "rehearsal: memory estimate against measured peak",
                           "tensors equal to the checkpoint's", "exported (native, expert K/V)"})
    EXPECT_NE(r.output.find(says), std::string::npos) << says << "\n" << r.output;
  EXPECT_FALSE(fs::exists(tmp / "runs/store.sqlite")) << "a rehearsal never writes a real store";
  tracking::Store store(tmp / "runs/rehearsal/store.sqlite", tracking::Store::Mode::kReadOnly);
  const auto runs = store.select("SELECT tags FROM runs");
  ASSERT_EQ(runs.rows.size(), 1u);
  EXPECT_NE(tracking::text_of(runs.rows[0][0]).find("rehearsal"), std::string::npos);
  const auto jobs = store.select("SELECT kind, dir, status FROM jobs ORDER BY id");
  int measured = 0;
  for (const auto& row : jobs.rows) {
    const std::string kind = tracking::text_of(row[0]), dir = tracking::text_of(row[1]);
    EXPECT_EQ(tracking::text_of(row[2]), "done") << dir;
    if (kind != "train" && kind != "upcycle" && kind != "eval") continue;
    ++measured;
    const double est = metric(store, dir, "memory/estimate_bytes");
    const double peak = metric(store, dir, "memory/peak_bytes");
    ASSERT_GT(peak, 0) << kind << " " << dir;
    EXPECT_NEAR(est / peak, 1.0, 0.1) << kind << " " << dir << ": the memory model's estimate "
                                      << est << " against the measured peak " << peak;
    if (kind == "train") {
      EXPECT_EQ(metric(store, dir, "tokens"), 32.0) << "one step of one 32-token sequence";
      for (const auto& f : fs::directory_iterator(dir + "/checkpoint"))
        EXPECT_NE(f.path().filename().string().rfind("optimizer", 0), 0u)
            << f.path() << ": the final checkpoint keeps the weights alone";
    }
  }
  // seed, 3 experts, 3 upcycled models, 4 mixture-phase jobs (at one step a CM stage is its DM
  // stage's job: the same model, data and budget), eval.
  EXPECT_EQ(measured, 12);
}

TEST(RehearsalTest, RefusesToChangeTheModel) {
  testing::TempDir tmp;
  const auto r = run_binary({UPCYCLE_BINARY, "run", kPaper + "bam_590m.yaml", "--rehearse",
                             "model.d_model=512", "executor=local"},
                            tmp.path());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("override 'model.d_model=512' is not one a rehearsal allows"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(tmp / "runs")) << "nothing ran";
  // The vocabulary comes from the data section: changing it there changes the model too.
  const auto vocab = run_binary({UPCYCLE_BINARY, "run", kPaper + "bam_590m.yaml", "--rehearse",
                                 "data.tokenizer.vocab=512", "executor=local"},
                                tmp.path());
  EXPECT_EQ(vocab.exit_code, 1) << vocab.output;
  EXPECT_NE(vocab.output.find("the rehearsal would change"), std::string::npos) << vocab.output;
  EXPECT_FALSE(fs::exists(tmp / "runs")) << "nothing ran";
}

TEST(RehearsalTest, The2BRecipeIsRefusedByTheMemoryModelBeforeAnythingRuns) {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  if (double(pages) * double(page) > 32e9)
    GTEST_SKIP() << "this machine has the memory to rehearse the 2B recipe";
  testing::TempDir tmp;
  const auto r = run_binary({UPCYCLE_BINARY, "run", kPaper + "bam_2b.yaml", "--rehearse",
                             "model.seq_len=256", "train.micro_batch=1", "executor=local"},
                            tmp.path());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  for (const char* says : {"stage seed does not fit this machine's memory", "optimizer", "weights",
                           "settings that would lower it"})
    EXPECT_NE(r.output.find(says), std::string::npos) << says << "\n" << r.output;
  EXPECT_FALSE(fs::exists(tmp / "runs")) << "nothing ran";
}

}  // namespace
}  // namespace upcycle
