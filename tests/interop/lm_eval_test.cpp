// lm-evaluation-harness as the outside referee of our downstream scores: a trained model is
// exported by the command stage's {hf} placeholder, the harness (scripts/lm_eval_tasks.py: the hf
// model type, CPU, a local YAML task over our built-in task file) scores it, `parser: lm_eval`
// ingests its results, and its per-document acc and acc_norm (--log_samples) must equal our eval's
// examples.jsonl, example for example.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "stages/io/checkpoint.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tests/support/tensor_asserts.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

const char* kRecipe = R"(name: harness
seed: 1
data:
  domains: [general, { name: code, max_bytes: 1M }, { name: law, max_bytes: 1M }, math]
  max_bytes: 300k
  valid_fraction: 0.1
  test_fraction: 0.3
  task_examples: 60
  tokenizer: { vocab: 384, sample_bytes: 50k }
model: { d_model: 32, layers: 2, heads: 2, kv_heads: 1, ffn_hidden: 64, seq_len: 256, block: sequential, norm: rmsnorm }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0, code: 1.0 }, budget: { tokens: 40k }, batch_size: 8 }
  ours: { kind: eval, models: [seed], domains: [code], max_windows: 2, max_examples: 60 }
  harness:
    kind: command
    models: [seed]
    argv: [PYTHON, SCRIPT, --model, "{hf}", --tasks-file, "{data_dir}/tasks/code.jsonl",
           --task, domain/code, --task, cont/code, --limit, "60", --out, "{out}"]
    parser: lm_eval
)";

std::string text_at(const tracking::ResultSet& r, size_t row, size_t col) {
  return tracking::text_of(r.rows.at(row).at(col));
}

// (task, doc_id) -> metric -> value, from JSON lines.
using PerExample = std::map<std::pair<std::string, int64_t>, std::map<std::string, double>>;

TEST(LmEvalInterop, HarnessScoresEqualOursExampleForExample) {
  testing::TempDir dir;
  std::string text = kRecipe;
  text.replace(text.find("PYTHON"), 6, UPCYCLE_TEST_PYTHON);
  text.replace(text.find("SCRIPT"), 6, UPCYCLE_SOURCE_DIR "/scripts/lm_eval_tasks.py");
  core::write_file_atomic(dir / "harness.yaml", text);
  auto r = testing::run_binary({UPCYCLE_BINARY, "run", dir / "harness.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  // Ours, per example.
  auto art = store.select(
      "SELECT a.path FROM artifacts a JOIN jobs j ON j.id = a.job_id WHERE a.kind = 'examples'");
  ASSERT_EQ(art.rows.size(), 1u);
  PerExample ours;
  std::ifstream in(text_at(art, 0, 0));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("acc"))
      ours[{j["task"], j["doc_id"]}] = {{"acc", j["acc"]}, {"acc_norm", j["acc_norm"]}};
  }
  // The harness's, per document, from its samples files.
  auto job = store.select("SELECT dir FROM jobs WHERE stage = 'harness/seed'");
  ASSERT_EQ(job.rows.size(), 1u);
  PerExample theirs;
  const std::map<std::string, std::string> task_of = {{"upcycle_domain_code", "domain/code"},
                                                      {"upcycle_cont_code", "cont/code"}};
  for (const auto& f : std::filesystem::recursive_directory_iterator(text_at(job, 0, 0) + "/out")) {
    const std::string name = f.path().filename().string();
    if (name.rfind("samples_", 0) != 0) continue;
    std::ifstream s(f.path());
    for (std::string line; std::getline(s, line);) {
      auto j = nlohmann::json::parse(line);
      const std::string task = task_of.at(name.substr(8, name.find("_20") - 8));
      theirs[{task, j["doc_id"]}] = {{"acc", j["acc"]}, {"acc_norm", j["acc_norm"]}};
    }
  }
  ASSERT_GE(ours.size(), 60u);  // up to 60 examples of each task
  ASSERT_EQ(theirs.size(), ours.size());
  int differ = 0;
  for (const auto& [key, m] : ours) {
    ASSERT_TRUE(theirs.count(key)) << key.first << " " << key.second;
    for (const char* metric : {"acc", "acc_norm"}) {
      if (theirs.at(key).at(metric) != m.at(metric)) ++differ;
      EXPECT_EQ(theirs.at(key).at(metric), m.at(metric))
          << key.first << " doc " << key.second << " " << metric;
    }
  }
  EXPECT_EQ(differ, 0);
  // Through the parser into the store: the harness's aggregate equals ours.
  auto agg = store.select(
      "SELECT o.value, h.value FROM v_results o JOIN v_results h ON h.metric = o.metric "
      "AND h.task = 'upcycle_' || replace(o.task, '/', '_') WHERE o.stage = 'ours' AND h.stage = "
      "'harness/seed' "
      "AND o.metric IN ('acc', 'acc_norm')");
  ASSERT_EQ(agg.rows.size(), 4u);
  for (const auto& row : agg.rows)
    EXPECT_DOUBLE_EQ(tracking::number_of(row[0]), tracking::number_of(row[1]));
}

}  // namespace
}  // namespace upcycle

namespace upcycle {
namespace {

// A recipe that starts from a checkpoint transformers saved: import as the seed (its tokenizer
// tokenizes the data), branch, BTX; then `upcycle export RUN/STAGE --format mixtral` and
// transformers computes the exported BTX's logits as we do.
TEST(HfSeedInterop, RecipeFromAnImportedSeedExportsItsBtxForTransformers) {
  testing::TempDir dir;
  const std::string py = UPCYCLE_TEST_PYTHON,
                    referee = UPCYCLE_SOURCE_DIR "/tests/interop/hf_referee.py";
  // The seed's tokenizer: one trained by a prepare job of a first run (any SentencePiece model
  // would do).
  core::write_file_atomic(dir / "tok.yaml", R"(name: tok
data: { domains: [general, code, { name: law, max_bytes: 1M }, math], max_bytes: 300k, valid_fraction: 0.1,
        test_fraction: 0.1, tokenizer: { vocab: 512, sample_bytes: 50k } }
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32, vocab: 512 }
stages: { data: { kind: prepare } }
)");
  auto tok = testing::run_binary({UPCYCLE_BINARY, "run", dir / "tok.yaml"}, dir.path());
  ASSERT_EQ(tok.exit_code, 0) << tok.output;
  tracking::Store s1(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  const std::string sp =
      text_at(s1.select("SELECT path FROM artifacts WHERE kind = 'tokenizer'"), 0, 0);
  auto make = testing::run_binary({py, referee, "make", "llama", sp, dir / "hf_seed"});
  ASSERT_EQ(make.exit_code, 0) << make.output;

  core::write_file_atomic(dir / "from_hf.yaml", R"(name: from_hf
seed: 1
data:
  domains: [general, code, { name: law, max_bytes: 1M }, math]
  max_bytes: 300k
  valid_fraction: 0.1
  test_fraction: 0.1
stages:
  data: { kind: prepare }
  seed: { kind: import, path: hf_seed, seq_len: 64 }
  experts: { kind: branch, from: seed, domains: [code, law], budget: { tokens: 4k }, batch_size: 4 }
  btx: { kind: upcycle, method: btx, from: [experts], ffn: { top_k: 2, routing: topk_then_softmax } }
  eval: { kind: eval, models: [seed, btx], max_windows: 2, tasks: [] }
)");
  auto r = testing::run_binary({UPCYCLE_BINARY, "run", dir / "from_hf.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  // The data was tokenized with the imported tokenizer, byte for byte the seed's.
  auto data = store.select(
      "SELECT j.dir FROM jobs j JOIN run_jobs rj ON rj.job_id = j.id JOIN runs r ON r.id = "
      "rj.run_id "
      "WHERE r.name = 'from_hf' AND j.kind = 'prepare'");
  ASSERT_EQ(data.rows.size(), 1u);
  EXPECT_EQ(core::read_file(text_at(data, 0, 0) + "/data/tokenizer.model"),
            core::read_file(dir / "hf_seed/tokenizer.model"));

  auto ex = testing::run_binary(
      {UPCYCLE_BINARY, "export", "from_hf/btx", "--format", "mixtral", "--out", dir / "btx_hf"},
      dir.path());
  ASSERT_EQ(ex.exit_code, 0) << ex.output;
  auto bad = testing::run_binary(
      {UPCYCLE_BINARY, "export", "from_hf/btx", "--format", "llama", "--out", dir / "no"},
      dir.path());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.output.find("export it as mixtral"), std::string::npos) << bad.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "no"));
  // transformers' logits of the exported BTX against ours, from the checkpoint the store points at.
  auto job = store.select("SELECT j.dir FROM jobs j WHERE j.stage = 'btx'");
  const std::vector<std::vector<int64_t>> tokens = {
      {5, 17, 300, 42, 9, 250, 77, 3, 120, 460, 11, 8}};
  core::write_file_atomic(dir / "tokens.json", nlohmann::json(tokens).dump());
  auto theirs = testing::run_binary(
      {py, referee, "logits", dir / "btx_hf", dir / "tokens.json", dir / "theirs.safetensors"});
  ASSERT_EQ(theirs.exit_code, 0) << theirs.output;
  stages::TransformerLm model = stages::load_model(text_at(job, 0, 0) + "/checkpoint");
  torch::NoGradGuard no_grad;
  const auto ours = model->forward(torch::tensor(tokens[0]).unsqueeze(0)).logits_BTV;
  EXPECT_TRUE(testing::tensors_near(
      stages::read_safetensors(dir / "theirs.safetensors").at("logits"), ours, 1e-4));
}

}  // namespace
}  // namespace upcycle
