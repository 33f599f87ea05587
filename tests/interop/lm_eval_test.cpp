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
#include "stages/data/tokenizer.h"
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
model: { d_model: 32, layers: 2, heads: 2, kv_heads: 1, ffn_hidden: 64, seq_len: 64, block: sequential, norm: rmsnorm }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0, code: 1.0 }, budget: { tokens: 40k }, batch_size: 8 }
  experts: { kind: branch, from: seed, domains: [code, general], budget: { tokens: 4k }, batch_size: 8 }
  bam: { kind: upcycle, method: bam, from: [experts] }
  bam_dm: { kind: train, from: bam, mix: { general: 1.0, code: 1.0 }, budget: { tokens: 4k }, batch_size: 8 }
  ours: { kind: eval, models: [seed, bam_dm], domains: [code], max_windows: 2, max_examples: 60 }
  harness:
    kind: command
    models: [seed]
    argv: [PYTHON, SCRIPT, --model, "{hf}", --tasks-file, "{data_dir}/tasks/code.jsonl",
           --task, domain/code, --task, cont/code, --limit, "60", --out, "{out}"]
    parser: lm_eval
  harness_bam:
    kind: command
    models: [bam_dm]
    hf_format: bam
    argv: [PYTHON, SCRIPT, --model, "{hf}", --tasks-file, "{data_dir}/tasks/code.jsonl",
           --task, domain/code, --task, cont/code, --limit, "60", --out, "{out}"]
    parser: lm_eval
)";

std::string text_at(const tracking::ResultSet& r, size_t row, size_t col) {
  return tracking::text_of(r.rows.at(row).at(col));
}

// (task, doc_id) -> metric -> value, from JSON lines.
using PerExample = std::map<std::pair<std::string, int64_t>, std::map<std::string, double>>;

// The harness scores the seed and a trained BAM (attention experts: transformers loads it through
// the export's modeling_bam.py, trust_remote_code) example for example as we do.
TEST(LmEvalInterop, HarnessScoresEqualOursExampleForExample) {
  testing::TempDir dir;
  std::string text = kRecipe;
  // The script as a relative path, as docs/interop.md writes it: the stage makes it absolute
  // against where `upcycle run` started (here, where scripts/ is), not the job's directory.
  std::filesystem::create_directory_symlink(UPCYCLE_SOURCE_DIR "/scripts", dir / "scripts");
  for (int twice = 0; twice < 2; ++twice) {
    text.replace(text.find("PYTHON"), 6, UPCYCLE_TEST_PYTHON);
    text.replace(text.find("SCRIPT"), 6, "scripts/lm_eval_tasks.py");
  }
  core::write_file_atomic(dir / "harness.yaml", text);
  auto r = testing::run_binary({UPCYCLE_BINARY, "run", dir / "harness.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;

  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  // Ours, per model and example.
  auto art = store.select(
      "SELECT a.path FROM artifacts a JOIN jobs j ON j.id = a.job_id WHERE a.kind = 'examples'");
  ASSERT_EQ(art.rows.size(), 1u);
  std::map<std::string, PerExample> ours;
  std::ifstream in(text_at(art, 0, 0));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("acc"))
      ours[j["model"]][{j["task"], j["doc_id"]}] = {{"acc", j["acc"]}, {"acc_norm", j["acc_norm"]}};
  }
  const std::map<std::string, std::string> task_of = {{"upcycle_domain_code", "domain/code"},
                                                      {"upcycle_cont_code", "cont/code"}};
  // The seed goes to the harness as a LlamaForCausalLM, the BAM with its modeling_bam.py.
  for (const auto& [model, stage] : std::map<std::string, std::string>{
           {"seed", "harness/seed"}, {"bam_dm", "harness_bam/bam_dm"}}) {
    SCOPED_TRACE(model);
    // The harness's, per document, from its samples files.
    auto job = store.select("SELECT dir FROM jobs WHERE stage = ?", {stage});
    ASSERT_EQ(job.rows.size(), 1u);
    PerExample theirs;
    for (const auto& f :
         std::filesystem::recursive_directory_iterator(text_at(job, 0, 0) + "/out")) {
      const std::string name = f.path().filename().string();
      if (name.rfind("samples_", 0) != 0) continue;
      std::ifstream s(f.path());
      for (std::string line; std::getline(s, line);) {
        auto j = nlohmann::json::parse(line);
        const std::string task = task_of.at(name.substr(8, name.find("_20") - 8));
        theirs[{task, j["doc_id"]}] = {{"acc", j["acc"]}, {"acc_norm", j["acc_norm"]}};
      }
    }
    const PerExample& mine = ours[model];
    // Up to 60 examples of each task; at context 64 some have a choice longer than the context,
    // which neither side scores (the harness would stop on its max_length assertion).
    ASSERT_GE(mine.size(), 60u);
    EXPECT_LT(mine.size(), 120u);
    ASSERT_EQ(theirs.size(), mine.size());
    int differ = 0;
    for (const auto& [key, m] : mine) {
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
        "AND h.task = 'upcycle_' || replace(o.task, '/', '_') WHERE o.stage = 'ours' AND "
        "o.model = ? AND h.stage = ? AND o.metric IN ('acc', 'acc_norm')",
        {model, stage});
    ASSERT_EQ(agg.rows.size(), 4u);
    for (const auto& row : agg.rows)
      EXPECT_DOUBLE_EQ(tracking::number_of(row[0]), tracking::number_of(row[1]));
  }
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

// A checkpoint of today's kind, made by transformers: Llama 3.1 RoPE scaling, tied embeddings and a
// byte-level BPE tokenizer.json only (GPT-2's vocabulary, scripts/hf_vocabs.py), as Llama 3.2 1B
// and SmolLM2 ship. The recipe imports it, tokenizes its text with that tokenizer, branches,
// evaluates bits per byte; the export ships the tokenizer.json, which transformers' AutoTokenizer
// encodes as ours and decodes back to the text.
TEST(HfSeedInterop, RecipeFromALlama3SeedWithOnlyTokenizerJsonTokenizesItsTextWithIt) {
  testing::TempDir dir;
  const std::string py = UPCYCLE_TEST_PYTHON,
                    referee = UPCYCLE_SOURCE_DIR "/tests/interop/hf_referee.py",
                    vocab = std::string(UPCYCLE_TEST_VOCABS) + "/gpt2/tokenizer.json";
  auto make = testing::run_binary({py, referee, "make", "llama3", vocab, dir / "hf_seed"});
  ASSERT_EQ(make.exit_code, 0) << make.output;
  ASSERT_FALSE(std::filesystem::exists(dir / "hf_seed/tokenizer.model"));
  core::write_file_atomic(dir / "from_hf.yaml", R"(name: llama3
seed: 1
data:
  domains: [general, { name: code, max_bytes: 1M }]
  max_bytes: 200k
  valid_fraction: 0.1
  test_fraction: 0.1
  task_examples: 20
stages:
  data: { kind: prepare }
  seed: { kind: import, path: hf_seed }
  experts: { kind: branch, from: seed, domains: [code], budget: { tokens: 2k }, batch_size: 2 }
  eval: { kind: eval, models: [seed, experts], max_windows: 2, max_examples: 10 }
)");
  auto r = testing::run_binary({UPCYCLE_BINARY, "run", dir / "from_hf.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  auto data = store.select("SELECT j.dir FROM jobs j WHERE j.kind = 'prepare'");
  ASSERT_EQ(data.rows.size(), 1u);
  const std::string data_dir = text_at(data, 0, 0) + "/data";
  EXPECT_EQ(core::read_file(data_dir + "/tokenizer.json"), core::read_file(vocab));
  EXPECT_FALSE(std::filesystem::exists(data_dir + "/tokenizer.model"));
  // Bits per byte need the tokenizer's bytes per token: the eval found it (GPT-2's tokens cover
  // several bytes each, where a byte-level count would be one).
  auto bytes = store.select(
      "SELECT y.value, y.n FROM v_results y WHERE y.metric = 'bytes' AND y.model = 'seed'");
  ASSERT_FALSE(bytes.rows.empty()) << r.output;
  for (const auto& row : bytes.rows)
    EXPECT_GT(std::get<double>(row[0]), 2.0 * double(std::get<int64_t>(row[1])));

  auto ex = testing::run_binary({UPCYCLE_BINARY, "export", "llama3/experts/code", "--format",
                                 "llama", "--out", dir / "hf_out"},
                                dir.path());
  ASSERT_EQ(ex.exit_code, 0) << ex.output;
  EXPECT_EQ(core::read_file(dir / "hf_out/tokenizer.json"), core::read_file(vocab));
  EXPECT_NE(core::read_file(dir / "hf_out/config.json").find("llama3"), std::string::npos);
  const std::vector<std::string> texts = {
      "Hello world", "  def f(x):\n\treturn x  # \xE2\x9C\x93\n\n", "<|endoftext|> after",
      "na\xC3\xAFve caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\xA6\x99 12345", "   "};
  core::write_file_atomic(dir / "texts.json", nlohmann::json(texts).dump());
  auto ids = testing::run_binary(
      {py, referee, "tokenize", dir / "hf_out", dir / "texts.json", dir / "ids.json"});
  ASSERT_EQ(ids.exit_code, 0) << ids.output;
  auto back = testing::run_binary(
      {py, referee, "roundtrip", dir / "hf_out", dir / "texts.json", dir / "back.json"});
  ASSERT_EQ(back.exit_code, 0) << back.output;
  const auto theirs = nlohmann::json::parse(std::ifstream(dir / "ids.json"));
  const auto decoded = nlohmann::json::parse(std::ifstream(dir / "back.json"));
  const stages::Tokenizer ours(data_dir + "/tokenizer.json");
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(theirs.at(i).get<std::vector<uint32_t>>(), ours.encode(texts[i])) << texts[i];
    EXPECT_EQ(decoded.at(i).get<std::string>(), texts[i]);
  }
}

}  // namespace
}  // namespace upcycle
