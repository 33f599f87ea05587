// User corpora. A recipe pointing at a folder of user JSONL: the law domain comes from JSONL files
// (one document per line, text field configurable) instead of the built-in sources, and flows
// through prepare, training and evaluation. The documents are real: Debian's license texts, one per
// line. And a folder of pre-tokenized nanoGPT shards (train.bin, val.bin): tokens of real
// documents, tokenized by an earlier run, trained on and evaluated without a tokenizer.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tests/support/text_data.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

struct Outcome {
  int exit_code = -1;
  std::string output;
  double ppl = 0;        ///< the one perplexity row of the task
  std::string manifest;  ///< the prepare job's manifest.json
};

// Runs DIR/r.yaml, then reads the task's perplexity and the manifest back from the store.
Outcome run_recipe(const testing::TempDir& dir, const std::string& task) {
  Outcome o;
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml"}, dir.path());
  o.exit_code = r.exit_code;
  o.output = r.output;
  if (r.exit_code != 0) return o;
  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  auto ppl = store.select("SELECT value FROM v_results WHERE task = ? AND metric = 'ppl'", {task});
  auto manifest = store.select("SELECT path FROM artifacts WHERE kind = 'manifest'");
  if (ppl.rows.size() != 1 || manifest.rows.size() != 1) {
    o.exit_code = -1;
    o.output += "\nexpected one ppl row and one manifest in the store";
    return o;
  }
  o.ppl = std::get<double>(ppl.rows[0][0]);
  o.manifest = core::read_file(std::get<std::string>(manifest.rows[0][0]));
  return o;
}

TEST(UserCorpusTest, JsonlFolderFeedsADomain) {
  testing::TempDir dir;
  core::make_dirs(dir / "corpus/part-a");
  int docs = 0;
  std::string a, b;
  for (const auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses")) {
    if (!e.is_regular_file()) continue;
    nlohmann::json line = {{"id", e.path().filename().string()},
                           {"body", core::read_file(e.path().string())}};
    ((docs++ % 2) ? a : b) += line.dump() + "\n";
  }
  ASSERT_GT(docs, 10);
  core::write_file_atomic(dir / "corpus/part-a/licenses-0.jsonl", a);
  core::write_file_atomic(dir / "corpus/licenses-1.jsonl", b);
  core::write_file_atomic(dir / "r.yaml", R"(name: user
seed: 1
data:
  domains:
    - general
    - { name: law, sources: [{ pattern: ")" + dir / "corpus/**/*.jsonl" +
                                              R"(", split: jsonl, text_field: body }] }
  max_bytes: 300k
  valid_fraction: 0.15
  test_fraction: 0.15
  tokenizer: { vocab: 384, sample_bytes: 50k }
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 0.5, law: 0.5 }, budget: { tokens: 4k }, batch_size: 4 }
  eval: { kind: eval, models: [seed], max_windows: 8 }
)");
  Outcome out = run_recipe(dir, "ppl/law");
  ASSERT_EQ(out.exit_code, 0) << out.output;
  EXPECT_LT(out.ppl, 384.0);  // better than uniform over the vocabulary
  // The manifest names the user files (no Debian package) with their hashes.
  const std::string& text = out.manifest;
  EXPECT_NE(text.find("corpus/part-a/licenses-0.jsonl"), std::string::npos);
  EXPECT_NE(text.find("corpus/licenses-1.jsonl"), std::string::npos);

  // A malformed line fails the prepare job, naming the file and line.
  core::write_file_atomic(dir / "corpus/licenses-1.jsonl", b + "{\"body\": 3}\n");
  auto bad = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "data.max_bytes=200k", "name=user-2"},
                        dir.path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("licenses-1.jsonl:" + std::to_string((docs + 1) / 2 + 1) +
                            ": no string field 'body'"),
            std::string::npos)
      << bad.output;
}

TEST(UserCorpusTest, NanoGptShardFolderFeedsADomain) {
  testing::TempDir dir;
  // Tokens of real documents: the general domain's shards from a text run, copied without sidecars.
  std::string log;
  const std::string data = testing::prepare_text_data(dir, &log);
  ASSERT_FALSE(data.empty()) << log;
  const std::string shards = data + "/shards";
  core::make_dirs(dir / "owt");
  std::filesystem::copy_file(shards + "/general.train.bin", dir / "owt/train.bin");
  std::filesystem::copy_file(shards + "/general.valid.bin", dir / "owt/val.bin");

  core::write_file_atomic(dir / "r.yaml", R"(name: shards
seed: 1
data:
  tokenizer: { kind: pretokenized, vocab: 384 }
  domains: [{ name: web, shards: { dir: owt, dtype: uint16 } }]
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { web: 1.0 }, budget: { tokens: 4k }, batch_size: 4 }
  eval: { kind: eval, models: [seed], max_windows: 8 }
)");
  Outcome out = run_recipe(dir, "ppl/web");
  ASSERT_EQ(out.exit_code, 0) << out.output;
  EXPECT_LT(out.ppl, 384.0);  // better than uniform over the vocabulary
  auto m = nlohmann::json::parse(out.manifest);
  const auto& sources = m.at("domains").at("web").at("sources");
  ASSERT_EQ(sources.size(), 2u);  // each file once
  EXPECT_EQ(sources[0].at("path"), dir / "owt/train.bin");
  EXPECT_EQ(sources[1].at("path"), dir / "owt/val.bin");
  EXPECT_EQ(sources[0].at("sha256").get<std::string>().size(), 64u);
  const auto& splits = m.at("domains").at("web").at("splits");
  EXPECT_EQ(splits.at("test"), splits.at("valid"));  // no test.bin: val doubles as test

  // A truncated shard fails the prepare job, naming the file and the reason.
  std::filesystem::resize_file(dir / "owt/val.bin",
                               std::filesystem::file_size(dir / "owt/val.bin") - 1);
  auto bad = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "seed=2", "name=shards-2"}, dir.path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("owt/val.bin: size"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("the shard is truncated"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace upcycle
