// The data directory of a small text run (the general domain's real documents, a 384-piece
// SentencePiece tokenizer): shards/general.<split>.bin and tokenizer.model, for tests that need
// tokens or a tokenizer a user would bring.
#pragma once

#include <filesystem>
#include <string>

#include "core/atomic_file.h"
#include "tests/support/run_binary.h"
#include "tests/support/temp_dir.h"

namespace upcycle::testing {

/// Runs the text recipe under DIR/text; its data directory, or "" (and `output` says why).
inline std::string prepare_text_data(const TempDir& dir, std::string* output = nullptr) {
  core::write_file_atomic(dir / "text.yaml", R"(name: text
data: { domains: [general], max_bytes: 200k, valid_fraction: 0.1, test_fraction: 0.1, tokenizer: { vocab: 384 } }
model: { d_model: 32, layers: 1, heads: 2, kv_heads: 2, ffn_hidden: 64, seq_len: 32 }
stages: { data: { kind: prepare } }
)");
  auto r = run_binary({UPCYCLE_BINARY, "run", "text.yaml", "root=text", "store=text/store.sqlite"},
                      dir.path());
  if (output) *output = r.output;
  if (r.exit_code != 0) return "";
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir / "text")) {
    if (e.path().filename() == "tokenizer.model") return e.path().parent_path().string();
  }
  return "";
}

}  // namespace upcycle::testing
