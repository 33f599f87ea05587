// Corpora as labs have them. Megatron-LM indexed datasets written by an independent Python writer
// (tests/support/megatron_writer.py, from the published layout) in two dtypes, blended with
// weights, train to exactly the loss of the same tokens fed as nanoGPT files; the store records
// the realised blend; a recipe dtype the index contradicts is refused. The tokens are the bytes of
// real documents (Debian's license texts, a document per paragraph). JSONL text (plain, gzip,
// zstd) is tokenized by prepare with the corpus's tokenizer, which export then ships; without one,
// export says what to give. And the paper recipes' header examples, list overrides by index and by
// name, run as written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/job_files.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_data.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

// The paragraphs of a license text as documents of byte tokens.
std::vector<std::vector<int>> paragraphs(const std::string& license) {
  const std::string text = core::read_file("/usr/share/common-licenses/" + license);
  std::vector<std::vector<int>> docs(1);
  for (size_t i = 0; i < text.size(); ++i) {
    if (text.compare(i, 2, "\n\n") == 0 && !docs.back().empty()) docs.emplace_back();
    docs.back().push_back(static_cast<unsigned char>(text[i]));
  }
  if (docs.back().empty()) docs.pop_back();
  return docs;
}

std::vector<int> concatenated(const std::vector<std::vector<int>>& docs) {
  std::vector<int> out;
  for (const auto& d : docs) out.insert(out.end(), d.begin(), d.end());
  return out;
}

// Writes each dataset as Megatron (m/NAME) and as nanoGPT (n/NAME.bin) through the Python writer.
void write_corpora(const testing::TempDir& dir) {
  const std::map<std::string, std::pair<std::string, std::string>> sets = {
      {"a", {"GPL-3", "uint16"}},
      {"b", {"Apache-2.0", "int32"}},
      {"c", {"LGPL-2.1", "uint16"}},
      {"v", {"GFDL-1.3", "uint16"}},
      {"t", {"Artistic", "int32"}}};
  nlohmann::json spec = {{"datasets", nlohmann::json::array()},
                         {"nanogpt", nlohmann::json::array()}};
  for (const auto& [name, from] : sets) {
    const auto docs = paragraphs(from.first);
    spec["datasets"].push_back({{"prefix", dir / ("m/" + name + "_text_document")},
                                {"dtype", from.second},
                                {"documents", docs}});
    spec["nanogpt"].push_back({{"path", dir / ("n/" + name + ".bin")},
                               {"dtype", "uint16"},
                               {"tokens", concatenated(docs)}});
  }
  core::make_dirs(dir / "m");
  core::make_dirs(dir / "n");
  core::write_file_atomic(dir / "corpora.json", spec.dump());
  auto r = run_binary({"/usr/bin/python3", UPCYCLE_SOURCE_DIR "/tests/support/megatron_writer.py",
                       dir / "corpora.json"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
}

std::string recipe(const std::string& name, const std::string& shards) {
  return "name: " + name + R"(
seed: 3
data:
  tokenizer: { kind: pretokenized, vocab: 256 }
  domains: [{ name: licenses, shards: )" +
         shards + R"( }]
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { licenses: 1.0 }, budget: { tokens: 32768 }, batch_size: 8, log_every: 4 }
  eval: { kind: eval, models: [seed], max_windows: 16 }
)";
}

// The losses of the run's train job, by step (metrics.jsonl).
std::map<int64_t, double> losses(const std::string& root) {
  std::map<int64_t, double> out;
  for (const auto& e : std::filesystem::directory_iterator(root + "/jobs")) {
    const std::string m = (e.path() / "metrics.jsonl").string();
    if (!std::filesystem::exists(m)) continue;
    std::ifstream in(m);
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.at("values").contains("loss"))
        out[j.at("step").get<int64_t>()] = j.at("values").at("loss").get<double>();
    }
  }
  return out;
}

double ppl_of(const std::string& store_path) {
  tracking::Store store(store_path, tracking::Store::Mode::kReadOnly);
  auto rs =
      store.select("SELECT value FROM v_results WHERE task = 'ppl/licenses' AND metric = 'ppl'");
  return rs.rows.size() == 1 ? std::get<double>(rs.rows[0][0]) : -1;
}

TEST(DataBlendTest, AMegatronBlendTrainsExactlyAsTheSameTokensFromNanoGptFiles) {
  testing::TempDir dir;
  write_corpora(dir);
  if (HasFailure()) return;
  core::write_file_atomic(
      dir / "megatron.yaml",
      recipe(
          "megatron",
          R"({ train: [{ path: m/a_text_document, weight: 0.5 }, { path: m/b_text_document.idx, weight: 0.3 }, { path: "m/c_*.bin", weight: 0.2 }], valid: m/v_text_document, test: m/t_text_document })"));
  core::write_file_atomic(
      dir / "nanogpt.yaml",
      recipe(
          "nanogpt",
          R"({ dtype: uint16, train: [{ path: n/a.bin, weight: 0.5 }, { path: n/b.bin, weight: 0.3 }, { path: n/c.bin, weight: 0.2 }], valid: n/v.bin, test: n/t.bin })"));
  auto m = run_binary(
      {UPCYCLE_BINARY, "run", "megatron.yaml", "root=rm", "store=rm/store.sqlite", "--no-report"},
      dir.path());
  ASSERT_EQ(m.exit_code, 0) << m.output;
  auto n = run_binary(
      {UPCYCLE_BINARY, "run", "nanogpt.yaml", "root=rn", "store=rn/store.sqlite", "--no-report"},
      dir.path());
  ASSERT_EQ(n.exit_code, 0) << n.output;

  const auto want = losses(dir / "rn"), got = losses(dir / "rm");
  ASSERT_GE(want.size(), 32u);  // 128 steps of 8 samples, a loss every 4 steps
  ASSERT_EQ(got.size(), want.size());
  for (const auto& [step, loss] : want) EXPECT_EQ(got.at(step), loss) << "step " << step;
  EXPECT_GT(ppl_of(dir / "rm/store.sqlite"), 1.0);
  EXPECT_EQ(ppl_of(dir / "rm/store.sqlite"), ppl_of(dir / "rn/store.sqlite"));

  // The realised blend: 1024 samples (32768 tokens / 32), each file near its weight.
  tracking::Store store(dir / "rm/store.sqlite", tracking::Store::Mode::kReadOnly);
  auto rs = store.select("SELECT part, weight, samples, realised FROM v_data_mix ORDER BY part");
  ASSERT_EQ(rs.rows.size(), 3u);
  const double weights[] = {0.5, 0.3, 0.2};
  int64_t total = 0;
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_NE(std::get<std::string>(rs.rows[i][0])
                  .find("m/" + std::string(1, "abc"[i]) + "_text_document"),
              std::string::npos);
    EXPECT_NEAR(std::get<double>(rs.rows[i][1]), weights[i], 1e-12);
    EXPECT_NEAR(std::get<double>(rs.rows[i][3]), weights[i], 0.06);  // binomial sd <= 0.016
    total += std::get<int64_t>(rs.rows[i][2]);
  }
  EXPECT_EQ(total, 1024);
}

TEST(DataBlendTest, ADtypeTheIndexContradictsIsRefusedNamingTheFile) {
  testing::TempDir dir;
  write_corpora(dir);
  if (HasFailure()) return;
  core::write_file_atomic(
      dir / "r.yaml",
      recipe("bad", "{ dtype: uint16, files: [m/b_text_document], split: \"8,1,1\" }"));
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--no-report"}, dir.path());
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(
      r.output.find("b_text_document.idx: the index says the tokens are int32, the recipe says "
                    "uint16"),
      std::string::npos)
      << r.output;
}

// The lines of a recipe's header comment that show `upcycle run ...`, joined at their trailing
// backslashes, as a shell would read them.
std::string header_command(const std::string& recipe) {
  std::ifstream in(recipe);
  std::string cmd;
  bool open = false;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#   upcycle run", 0) != 0 && !open) continue;
    if (line.rfind("#", 0) != 0) break;
    std::string text = line.substr(1);
    open = !text.empty() && text.back() == '\\';
    cmd += open ? text.substr(0, text.size() - 1) : text;
    if (!open) break;
  }
  return cmd;
}

TEST(DataBlendTest, ThePaperRecipesHeaderExamplesRunAsWritten) {
  for (const char* name : {"bam_590m", "bam_2b"}) {
    const std::string cmd =
        header_command(UPCYCLE_SOURCE_DIR "/recipes/paper/" + std::string(name) + ".yaml");
    ASSERT_NE(cmd.find("data.domains[0].shards.dir="), std::string::npos) << cmd;
    ASSERT_NE(cmd.find("data.domains[name=code].shards="), std::string::npos) << cmd;
    // As written, with `plan --specs` for `run`: nothing is queued, every job's spec is printed.
    std::string shell = cmd;
    shell.replace(shell.find("upcycle run"), 11, std::string(UPCYCLE_BINARY) + " plan");
    auto r = run_binary({"/bin/bash", "-c", shell + " --specs"}, UPCYCLE_SOURCE_DIR);
    ASSERT_EQ(r.exit_code, 0) << shell << "\n" << r.output;
    EXPECT_NE(r.output.find("\"dir\": \"/datasets/bam/general\""), std::string::npos) << name;
    EXPECT_NE(r.output.find("\"pattern\": \"/datasets/stack/python_text_document\""),
              std::string::npos)
        << name;
    EXPECT_NE(r.output.find("\"split\": \"969,30,1\""), std::string::npos) << name;
  }
}

TEST(DataBlendTest, ListOverridesNameTheirErrors) {
  const std::string paper = UPCYCLE_SOURCE_DIR "/recipes/paper/bam_590m.yaml";
  struct Case {
    const char* override_text;
    const char* error;
  };
  for (const Case& c : std::vector<Case>{
           {"data.domains[4].shards.dir=/x",
            "data.domains[4].shards.dir=/x': domains[4]: index out of range (the list has 4 "
            "elements)"},
           {"data.domains[-1].shards.dir=/x", "domains[-1]: "},
           {"data.domains[name=maths].shards.dir=/x",
            "domains[name=maths]: no element has name maths"},
           {"data.domains[name=code.shards.dir=/x", "'[' without ']'"},
           {"data.tokenizer[0]=1", "tokenizer is not a list"},
       }) {
    auto r = run_binary({UPCYCLE_BINARY, "plan", paper, c.override_text});
    EXPECT_EQ(r.exit_code, 1) << c.override_text << "\n" << r.output;
    EXPECT_NE(r.output.find(c.error), std::string::npos) << c.override_text << "\n" << r.output;
  }
  // In a sweep too: one run per directory of the code domain.
  testing::TempDir dir;
  core::write_file_atomic(dir / "s.yaml", "include: [" + paper + R"(]
sweep:
  data.domains[name=code].shards.dir: [/datasets/code-a, /datasets/code-b]
)");
  auto r = run_binary({UPCYCLE_BINARY, "plan", "s.yaml", "--specs"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("/datasets/code-a"), std::string::npos);
  EXPECT_NE(r.output.find("/datasets/code-b"), std::string::npos);
}

// Raw text as labs have it: JSONL (plain, gzip, zstd) tokenized by the prepare stage with the
// corpus's own SentencePiece model (data.tokenizer.path), trained on, evaluated, and exported with
// that tokenizer; without data.tokenizer.path, export refuses and says what to give.
TEST(DataBlendTest, JsonlTextIsTokenizedWithTheCorpusTokenizerWhichExportShips) {
  testing::TempDir dir;
  // The corpus's tokenizer: a text run's SentencePiece model.
  std::string log;
  const std::string data = testing::prepare_text_data(dir, &log);
  ASSERT_FALSE(data.empty()) << log;
  const std::string model = data + "/tokenizer.model";
  std::filesystem::copy_file(model, dir / "corpus.model");

  core::make_dirs(dir / "jsonl");
  for (const char* license : {"GPL-3", "Apache-2.0", "LGPL-2.1"}) {
    std::string lines;
    const std::string body = core::read_file("/usr/share/common-licenses/" + std::string(license));
    for (size_t at = 0; at < body.size();) {
      size_t end = body.find("\n\n", at);
      if (end == std::string::npos) end = body.size();
      if (end > at) lines += nlohmann::json({{"body", body.substr(at, end - at)}}).dump() + "\n";
      at = end + 2;
    }
    core::write_file_atomic(dir / ("jsonl/" + std::string(license) + ".jsonl"), lines);
  }
  ASSERT_EQ(run_binary({"/usr/bin/gzip", dir / "jsonl/GPL-3.jsonl"}).exit_code, 0);
  ASSERT_EQ(run_binary({"/usr/bin/zstd", "-q", "--rm", dir / "jsonl/Apache-2.0.jsonl"}).exit_code,
            0);

  auto write_recipe = [&](const std::string& tokenizer) {
    core::write_file_atomic(dir / "r.yaml", R"(name: jsonl
seed: 1
data:
  tokenizer: { kind: pretokenized, vocab: 384)" +
                                                tokenizer + R"( }
  domains: [{ name: licenses, jsonl: { files: [jsonl], text_field: body, split: "8,1,1" } }]
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { licenses: 1.0 }, budget: { tokens: 8k }, batch_size: 4 }
  eval: { kind: eval, models: [seed], max_windows: 8 }
)");
  };
  write_recipe("");
  auto refused = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--no-report"}, dir.path());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(
      refused.output.find("domains[0].jsonl: JSONL text is tokenized with data.tokenizer.path"),
      std::string::npos)
      << refused.output;

  write_recipe(", path: corpus.model");
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--no-report"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  auto ppl =
      store.select("SELECT value FROM v_results WHERE task = 'ppl/licenses' AND metric = 'ppl'");
  ASSERT_EQ(ppl.rows.size(), 1u);
  EXPECT_LT(std::get<double>(ppl.rows[0][0]), 384.0);  // better than uniform
  auto manifest = store.select("SELECT path FROM artifacts WHERE kind = 'manifest'");
  const auto m = nlohmann::json::parse(core::read_file(std::get<std::string>(manifest.rows[0][0])));
  const auto& sources = m.at("domains").at("licenses").at("sources");
  ASSERT_EQ(sources.size(), 3u);  // the three JSONL files, each with its documents and tokens
  for (const auto& s : sources) {
    EXPECT_EQ(s.at("format"), "jsonl");
    EXPECT_GT(s.at("documents").get<int64_t>(), 10) << s.dump();
  }

  auto exported = run_binary(
      {UPCYCLE_BINARY, "export", "jsonl/seed", "--format", "native", "--out", "hf"}, dir.path());
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  EXPECT_EQ(core::read_file(dir / "hf/tokenizer.model"), core::read_file(dir / "corpus.model"));
}

// A pre-tokenized run whose recipe names no tokenizer: export says what to give, and ships the one
// given with --tokenizer.
TEST(DataBlendTest, ExportOfAPretokenizedRunNeedsItsTokenizer) {
  testing::TempDir dir;
  write_corpora(dir);
  if (HasFailure()) return;
  core::write_file_atomic(
      dir / "r.yaml",
      recipe("plain", "{ files: [m/a_text_document, m/c_text_document], split: \"8,1,1\" }"));
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "--no-report",
                       "stages.seed.budget.tokens=2048", "stages.eval.max_windows=2"},
                      dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto refused = run_binary(
      {UPCYCLE_BINARY, "export", "plain/seed", "--format", "native", "--out", "hf"}, dir.path());
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(
      refused.output.find("the run's data is pre-tokenized and its recipe names no tokenizer"),
      std::string::npos)
      << refused.output;
  EXPECT_NE(refused.output.find("give --tokenizer PATH"), std::string::npos) << refused.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "hf"));
  // The corpus's tokenizer.json, given: shipped as it is, with a PreTrainedTokenizerFast config.
  const std::string tok = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
                              "added_tokens": [{"id": 1, "content": "<|endoftext|>"}]})";
  core::write_file_atomic(dir / "corpus.json", tok);
  auto given = run_binary({UPCYCLE_BINARY, "export", "plain/seed", "--format", "native", "--out",
                           "hf", "--tokenizer", "corpus.json"},
                          dir.path());
  ASSERT_EQ(given.exit_code, 0) << given.output;
  EXPECT_EQ(core::read_file(dir / "hf/tokenizer.json"), tok);
  EXPECT_NE(core::read_file(dir / "hf/tokenizer_config.json").find("<|endoftext|>"),
            std::string::npos);
}

}  // namespace
}  // namespace upcycle
