// Bad input beyond recipes (those are bad_recipe_test.cpp's table): hand-written job specs, filter
// expressions with quotes or SQL fragments, bad queries and commands, run names, a working
// directory that is not UTF-8, a full disk. Each must exit with code 1, say precisely what is
// wrong, and leave nothing behind: a rejected query or command leaves every row of an existing
// store as it was.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/store_dump.h"
#include "tests/support/temp_dir.h"
#include "tests/support/valid_recipe.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

using testing::kValid;

// `upcycle stage --spec` reads a spec with the same code the planner fills it with: a hand-written
// spec with a bad field exits 1 naming the field, before any work (no result, no lock, no crash).
TEST(BadInputTest, JobSpecsAreValidatedByTheStageCommand) {
  const nlohmann::json valid = {{"kind", "train"},
                                {"version", 3},  // TrainJobSpec::kOutputVersion
                                {"key", std::string(64, 'a')},
                                {"data_dir", "/nonexistent"},
                                {"mix", {{"general", 1.0}}},
                                {"tokens", 64},
                                {"model", nlohmann::json::object()}};
  auto with_field = [&](const std::string& k, nlohmann::json v) {
    nlohmann::json j = valid;
    j[k] = v;
    return j;
  };
  const std::vector<std::pair<std::string, std::string>> cases = {
      {with_field("batch_size", 0).dump(), "spec.json: batch_size: must be in [1, 2^24]"},
      {with_field("log_every", 0).dump(), "spec.json: log_every: must be >= 1"},
      {with_field("micro_batch", 3).dump(), "micro_batch: must divide batch_size"},
      {with_field("kind", "trian").dump(),
       "kind: unknown job kind 'trian' (kinds: prepare, train, upcycle, eval, command, import)"},
      {with_field("version", 99).dump(), "version: the spec was planned for output version 99"},
      {with_field("threads", 100000).dump(), "threads: must be in [1, 4096]"},
      {with_field("optim", {{"beta1", 1.5}}).dump(), "optim.beta1: must be in [0, 1)"},
      {with_field("key", "../x").dump(), "key: expected a sha256"},
      {"[]", "spec: expected a JSON object"},
      // Found by the fuzzers: a number beyond a double was an uncaught exception (exit 2).
      {valid.dump().insert(1, "\"max_bytes\": 3e999, "),
       "spec.json: invalid JSON: a number is out of range"},
      // nlohmann converts silently: 2.5 -> 2, -1 -> 2^64-1, 1e10 -> a wrapped int.
      {with_field("threads", 2.5).dump(), "threads: expected an integer, got 2.5"},
      {with_field("seed", -1).dump(), "seed: must be >= 0, got -1"},
      {with_field("threads", 10000000000LL).dump(), "threads: out of range for a 32-bit integer"},
      {with_field("mix", {{"../x", 1.0}}).dump(), "mix: '../x' is not a valid name"},
      {with_field("log_every", true).dump(), "log_every: has the wrong type (boolean)"},
      {with_field("model", {{"layers", 1e300}}).dump(),
       "model.layers: expected an integer, got 1e+300"},  // fuzzers: UB cast
  };
  for (const auto& [spec, expect] : cases) {
    testing::TempDir dir;
    core::write_file_atomic(dir / "spec.json", spec);
    auto r = run_binary({UPCYCLE_BINARY, "stage", "--spec", dir / "spec.json"}, dir.path());
    EXPECT_EQ(r.exit_code, 1) << expect << ": " << r.output;
    EXPECT_NE(r.output.find(expect), std::string::npos) << "expected '" << expect << "' in\n"
                                                        << r.output;
    EXPECT_FALSE(std::filesystem::exists(dir / "result.json"));
    EXPECT_FALSE(std::filesystem::exists(dir / ".lock")) << "validated before locking";
  }
}

// A name holding SQL is just a name: it is bound, never spliced, so `plan` accepts it.
TEST(BadInputTest, SqlInAValueIsData) {
  testing::TempDir dir;
  core::write_file_atomic(dir / "r.yaml", kValid);
  auto r =
      run_binary({UPCYCLE_BINARY, "plan", "r.yaml", "name=x'; DROP TABLE runs; --"}, dir.path());
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

struct CommandCase {
  const char* name;
  std::vector<std::string> args;  ///< after the binary
  std::string expect;
};

TEST(BadInputTest, QueriesAndCommandsAreRejectedAndTheStoreIsUntouched) {
  testing::TempDir dir;
  const std::string store_path = dir / "runs/store.sqlite";
  core::make_dirs(dir / "runs");
  {
    tracking::Store s(store_path);
    s.upsert_run({"k1", "exp", "base", "{}"});
  }
  const std::vector<CommandCase> cases = {
      {"where_unterminated", {"query", "--where", "model = 'bam"}, "unterminated"},
      {"where_sql_injection",
       {"query", "--where", "model = x; DROP TABLE runs"},
       "unexpected 'DROP'"},
      {"where_comment", {"query", "--where", "model = 'x' OR 1=1 --"}, "--where: column"},
      {"where_unbalanced", {"query", "--where", "(model = x"}, "expected ')'"},
      {"where_unknown_field", {"query", "--where", "modle = x"}, "did you mean 'model'?"},
      {"where_missing_value", {"query", "--where", "value >"}, "--where: column"},
      {"where_empty_param", {"query", "--where", "params. = 3"}, "--where: column"},
      {"where_bad_in", {"query", "--where", "model IN bam"}, "--where: column"},
      {"bad_format", {"query", "--format", "xml"}, "xml"},
      {"unknown_command", {"rnu"}, "did you mean 'run'?"},
      {"unknown_option", {"query", "--bogus", "x"}, "see `upcycle query --help`"},
      {"missing_recipe", {"run", "nope.yaml"}, "nope.yaml: recipe file not found"},
      {"compare_one_run", {"compare", "base"}, "two or more runs"},
      {"compare_unknown_run", {"compare", "base", "bsae2"}, "no run named 'bsae2'"},
      {"resume_unknown_run", {"resume", "nosuch"}, "no run named 'nosuch'"},
      {"cancel_unknown_run", {"cancel", "nosuch"}, "no run named 'nosuch'"},
      {"wait_unknown_run", {"wait", "nosuch"}, "no run named 'nosuch'"},
      {"run_unknown_executor",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--executor", "pbs"},
       "'pbs' is not allowed; expected local or slurm"},
      {"tag_with_comma",
       {"tag", "a,b"},
       "upcycle tag: tag 'a,b' is not allowed: 1 to 64 of letters"},
      {"tag_with_slash", {"tag", "../x"}, "tag '../x' is not allowed"},
      {"tag_not_utf8", {"tag", "a\xff"}, "tag '(not UTF-8)' is not allowed"},
      {"run_tag_with_space",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--tag", "a b"},
       "--tag: tag 'a b' is not allowed"},
      {"table_unknown", {"table", "pplx"}, "unknown table 'pplx'"},
      {"table_unknown_metric", {"table", "ppl", "--metric", "bits"}, "unknown --metric 'bits'"},
      {"status_unknown_run", {"status", "--run", "nosuch"}, "no run named 'nosuch'"},
      {"store_missing", {"query", "--store", "elsewhere.sqlite"}, "no store here"},
      {"where_deep_nesting",
       {"query", "--where", std::string(12000, '(') + "model = x" + std::string(12000, ')')},
       "nested deeper than 24 levels"},
      {"plot_unknown",
       {"plot", "los"},
       "unknown plot 'los' (known: loss, loss-flops, ppl, expert-util)"},
      {"table_of_a_store_without_evals", {"table", "ppl"}, "run 'base' has no perplexity results"},
      {"plot_of_a_run_without_metrics",
       {"plot", "loss", "--out", "p"},
       "run 'base' has no training metrics"},
      {"report_unknown_run", {"report", "--run", "nosuch", "--out", "r"}, "no run named 'nosuch'"},
      {"recipe_not_a_file", {"plan", "/dev/zero"}, "/dev/zero: not a regular file"},
      {"recipe_is_a_directory", {"plan", "."}, ".: not a regular file"},
      // Every CLI number through the one checked parser, with a range.
      {"bench_threads_zero",
       {"bench", "train", "--threads", "0"},
       "--threads: must be in [1, 4096], got '0'"},
      {"bench_batch_zero",
       {"bench", "train", "--batch", "0"},
       "--batch: must be in [1, 2^24], got '0'"},
      {"bench_rows_negative", {"bench", "store", "--rows", "-5"}, "--rows: must be >= 1, got '-5'"},
      {"bench_experts_negative",
       {"bench", "train", "--experts", "-2"},
       "--experts: must be in [0, 4096], got '-2'"},
      {"bench_runs_hex", {"bench", "store", "--runs", "0x10"}, "--runs: not an integer"},
      {"run_max_parallel_negative",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "-j", "-1"},
       "--max-parallel: must be in [0, 65536], got '-1'"},
      {"flops_context_wrap",
       {"flops", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--context", "1e30"},
       "--context: must be in [0, 2^40]"},
      // Directories that belong to the user are never replaced (core/output_dir.h).
      {"bench_dir_holds_the_store",
       {"bench", "store", "--dir", "runs"},
       "--dir: runs: exists, is not empty and was not written by upcycle"},
      {"bench_dir_cwd", {"bench", "store", "--dir", "."}, "--dir: .: exists, is not empty"},
      {"bench_dir_a_file",
       {"bench", "store", "--dir", "runs/store.sqlite"},
       "exists and is not a directory"},
      {"export_over_the_runs_root",
       {"export", "base/seed", "--out", "runs", "--force"},
       "--out: runs: refusing to write here: it holds the store"},
      {"export_over_the_cwd",
       {"export", "base/seed", "--out", "."},
       "--out: .: refusing to write here: it holds the store"},
      {"import_over_its_source",
       {"import", "runs", "--out", "runs", "--force"},
       "--out: runs: refusing to write here: it is the checkpoint it imports"},
      {"import_over_a_directory",
       {"import", "nosuch", "--out", "runs"},
       "--out: runs: refusing to write here: it holds the default store"},
      {"plot_out_with_a_newline",
       {"plot", "loss", "--out", "p\n!touch X"},
       "the output path holds a control character"},
      // Query numbers are finite decimals: nan and inf matched every row.
      {"where_nan",
       {"query", "--where", "value < nan"},
       "'value' is numeric: expected a finite decimal number, got 'nan'"},
      {"where_inf", {"query", "--where", "value != inf"}, "got 'inf'"},
      {"where_hex", {"query", "--where", "n IN (1, 0x10)"}, "got '0x10'"},
      // Only regular files are read, and never past a cap.
      {"stage_spec_dev_zero", {"stage", "--spec", "/dev/zero"}, "/dev/zero: not a regular file"},
      {"stage_spec_fifo", {"stage", "--spec", "fifo"}, "fifo: not a regular file"},
      {"import_config_fifo",
       {"import", "hf", "--out", "imported"},
       "hf/config.json: not a regular file"},
      {"store_dev_null",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--store", "/dev/null"},
       "/dev/null: not a store (not a regular file)"},
      {"store_not_sqlite",
       {"run", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml", "--store", "notes.txt"},
       "notes.txt: not a store (not an SQLite database)"},
  };
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0644), 0);
  core::make_dirs(dir / "hf");
  ASSERT_EQ(::mkfifo((dir / "hf/config.json").c_str(), 0644), 0);
  core::write_file_atomic(dir / "notes.txt", "my notes\n");
  std::string before;
  {
    tracking::Store s(store_path, tracking::Store::Mode::kReadOnly);
    before = testing::dump_store(s);
  }
  for (const auto& c : cases) {
    std::vector<std::string> argv = {UPCYCLE_BINARY};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    auto r = run_binary(argv, dir.path());
    EXPECT_EQ(r.exit_code, 1) << c.name << ": " << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos)
        << c.name << ": expected '" << c.expect << "' in\n"
        << r.output;
  }
  tracking::Store s(store_path, tracking::Store::Mode::kReadOnly);
  EXPECT_EQ(testing::dump_store(s), before);
  EXPECT_EQ(core::read_file(dir / "notes.txt"), "my notes\n");
  for (const char* stray :
       {"/dev/null.lock", "notes.txt.lock", "X", "imported", "p\n!touch X", "p", "r"}) {
    EXPECT_FALSE(std::filesystem::exists(std::filesystem::path(dir.path()) / stray))
        << stray << " was left";
  }
  size_t entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  EXPECT_EQ(entries, 4u) << "runs, fifo, hf, notes.txt and nothing else";
}

// A run name is one recipe: the same name with another recipe is refused, naming what differs, and
// the store keeps one run; keys that only say how it runs (threads, the executor) are the same run.
TEST(BadInputTest, ARunNameIsOneRecipe) {
  testing::TempDir dir;
  core::write_file_atomic(
      dir / "r.yaml",
      "name: one\nseed: 3\ndata:\n  domains: [general, code]\n  max_bytes: 300k\n"
      "  valid_fraction: 0.2\n  test_fraction: 0.2\n"
      "  tokenizer: { vocab: 512, sample_bytes: 50k }\nstages:\n  data: { kind: prepare }\n");
  ASSERT_EQ(run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--no-report"}, dir.path()).exit_code, 0);
  auto changed =
      run_binary({UPCYCLE_BINARY, "run", "r.yaml", "data.valid_fraction=0.3"}, dir.path());
  EXPECT_EQ(changed.exit_code, 1) << changed.output;
  EXPECT_NE(changed.output.find("run 'one' is already in runs/store.sqlite with another recipe "
                                "(data.valid_fraction: 0.2 -> 0.3)"),
            std::string::npos)
      << changed.output;
  EXPECT_NE(changed.output.find("name=one-2"), std::string::npos) << changed.output;
  auto seed = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "seed=4"}, dir.path());
  EXPECT_EQ(seed.exit_code, 1) << "the seed is part of a run's identity too: " << seed.output;
  auto threads =
      run_binary({UPCYCLE_BINARY, "run", "r.yaml", "threads=2", "--no-report"}, dir.path());
  EXPECT_EQ(threads.exit_code, 0) << threads.output;
  tracking::Store s(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  EXPECT_EQ(s.select("SELECT COUNT(*) FROM runs WHERE name = 'one'").rows.at(0).at(0),
            tracking::Cell(int64_t(1)));
}

// A working directory whose path is not UTF-8 would put that path into spec.json and the store:
// refused at plan time, in our words, not as the JSON writer's exception.
TEST(BadInputTest, AWorkingDirectoryThatIsNotUtf8IsNamed) {
  testing::TempDir dir;
  const std::string odd = dir / "caf\xe9";
  core::make_dirs(odd);
  auto r = run_binary({UPCYCLE_BINARY, "plan", UPCYCLE_SOURCE_DIR "/recipes/ci/tiny.yaml"}, odd);
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("is not valid UTF-8 (the working directory's path?)"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("json"), std::string::npos) << r.output;
}

// A full disk (here a file-size limit, which fails writes with EFBIG where a full disk fails them
// with ENOSPC): the store's and a shard's errors name the file and the reason, the runner exits 1,
// and what was complete before is still there. (A checkpoint: TrainerBadInputTest.DiskFull...)
TEST(BadInputTest, AFullDiskNamesTheFileAndLosesNothing) {
  const std::string prepare_only =
      "name: df\nseed: 3\ndata:\n  domains: [general, code]\n  max_bytes: 200k\n"
      "  tokenizer: { vocab: 512, sample_bytes: 50k }\n"
      "model: { d_model: 64, layers: 2, heads: 4, kv_heads: 4, ffn_hidden: 128, seq_len: 32 }\n"
      "stages:\n  data: { kind: prepare }\n";
  {  // the store: an 8 KiB limit fails the first write-ahead-log frame past the first page
    testing::TempDir dir;
    core::make_dirs(dir / "runs");
    {
      tracking::Store s(dir / "runs/store.sqlite");
      s.upsert_run({"k1", "exp", "earlier", "{}"});
    }
    std::string before;
    {
      tracking::Store s(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
      before = testing::dump_store(s);
    }
    core::write_file_atomic(dir / "r.yaml", prepare_only);
    auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml"}, dir.path(), 8 << 10);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("runs/store.sqlite: "), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("disk I/O error"), std::string::npos) << r.output;
    tracking::Store s(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
    EXPECT_EQ(testing::dump_store(s), before) << "the failed run changed the store";
  }
  {  // a shard: the prepare job fails naming it, leaves no partial shard, and the run says so
    testing::TempDir dir;
    core::write_file_atomic(dir / "r.yaml", prepare_only);
    auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml"}, dir.path(), 200 << 10);
    EXPECT_EQ(r.exit_code, 1) << r.output;
    EXPECT_NE(r.output.find("shards/general.train.bin"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("File too large"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("internal error"), std::string::npos) << r.output;
    for (const auto& f : std::filesystem::recursive_directory_iterator(dir / "runs/jobs")) {
      EXPECT_EQ(f.path().string().find(".bin"), std::string::npos)
          << "a partial shard was left: " << f.path();
    }
  }
}

}  // namespace
}  // namespace upcycle
