#include "stages/data/tokenizer.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "stages/data/math_problems.h"
#include "tests/support/temp_dir.h"

namespace upcycle::stages {
namespace {

TEST(TokenizerTest, TrainsAndRoundTripsCodeWhitespace) {
  testing::TempDir dir;
  std::string text;
  for (const auto& d : generate_math_documents(1, 60000)) text += d.text;
  core::write_file_atomic(dir / "sample.txt", text);
  train_tokenizer(dir / "sample.txt", dir / "tok", {400, "bpe", 1, 0});
  Tokenizer tok(dir / "tok.model");
  EXPECT_EQ(tok.vocab_size(), 400);
  std::string code = "def f(x):\n    return x  *  2\t# ünïcode\n";
  auto ids = tok.encode(code);
  EXPECT_FALSE(ids.empty());
  EXPECT_EQ(tok.decode(ids), code);  // identity normalisation + byte fallback keep every byte
}

TEST(TokenizerTest, MissingModelIsAStageError) {
  EXPECT_THROW(Tokenizer("/nonexistent/tok.model"), StageError);
}

}  // namespace
}  // namespace upcycle::stages
