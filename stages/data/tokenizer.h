// SentencePiece tokenizer (BPE or unigram, byte fallback, identity normalisation so code keeps its
// whitespace). Wraps sentencepiece behind a small interface; no LibTorch.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace upcycle::stages {

struct TokenizerTrainOptions {
  int64_t vocab = 1024;  ///< also the vocabulary of pre-tokenized shards
  std::string model_type = "bpe";  ///< bpe | unigram
  int threads = 1;
  uint64_t seed = 0;
};

/// Trains on the text file `input` (one sentence per line) and writes PREFIX.model and PREFIX.vocab.
/// Throws StageError with sentencepiece's message on failure.
void train_tokenizer(const std::string& input, const std::string& prefix,
                     const TokenizerTrainOptions& opts);

class Tokenizer {
 public:
  /// Loads a .model file. Throws StageError naming the path.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  std::vector<uint32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<uint32_t>& ids) const;
  int64_t vocab_size() const;
  uint32_t eos_id() const;

 private:
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

}  // namespace upcycle::stages
