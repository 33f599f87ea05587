// A recipe pointing at a folder of user JSONL: the law domain comes from JSONL files (one document
// per line, text field configurable) instead of the built-in sources, and flows through prepare,
// training and evaluation. The documents are real: Debian's license texts, one per line.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"
#include "tracking/store.h"

namespace upcycle {
namespace {

using testing::run_binary;

TEST(UserCorpusTest, JsonlFolderFeedsADomain) {
  testing::TempDir dir;
  core::make_dirs(dir / "corpus/part-a");
  int docs = 0;
  std::string a, b;
  for (const auto& e : std::filesystem::directory_iterator("/usr/share/common-licenses")) {
    if (!e.is_regular_file()) continue;
    nlohmann::json line = {{"id", e.path().filename().string()}, {"body", core::read_file(e.path().string())}};
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
    - { name: law, sources: [{ pattern: ")" + dir / "corpus/**/*.jsonl" + R"(", split: jsonl, text_field: body }] }
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
  auto r = run_binary({UPCYCLE_BINARY, "run", "r.yaml"}, dir.path());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  tracking::Store store(dir / "runs/store.sqlite", tracking::Store::Mode::kReadOnly);
  auto ppl = store.select("SELECT value FROM v_results WHERE task = 'ppl/law' AND metric = 'ppl'");
  ASSERT_EQ(ppl.rows.size(), 1u);
  EXPECT_LT(std::get<double>(ppl.rows[0][0]), 384.0);  // better than uniform over the vocabulary
  // The manifest names the user files (no Debian package) with their hashes.
  auto manifest = store.select("SELECT path FROM artifacts WHERE kind = 'manifest'");
  ASSERT_EQ(manifest.rows.size(), 1u);
  std::string text = core::read_file(std::get<std::string>(manifest.rows[0][0]));
  EXPECT_NE(text.find("corpus/part-a/licenses-0.jsonl"), std::string::npos);
  EXPECT_NE(text.find("corpus/licenses-1.jsonl"), std::string::npos);

  // A malformed line fails the prepare job, naming the file and line.
  core::write_file_atomic(dir / "corpus/licenses-1.jsonl", b + "{\"body\": 3}\n");
  auto bad = run_binary({UPCYCLE_BINARY, "run", "r.yaml", "data.max_bytes=200k"}, dir.path());
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.output.find("licenses-1.jsonl:" + std::to_string((docs + 1) / 2 + 1) + ": no string field 'body'"),
            std::string::npos) << bad.output;
}

}  // namespace
}  // namespace upcycle
