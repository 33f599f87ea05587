// The tokenizer the data pipeline and eval use: a SentencePiece model (BPE or unigram, byte
// fallback, identity normalisation so code keeps its whitespace; what the prepare stage trains), or
// a Hugging Face byte-level BPE tokenizer.json (GPT-2, Llama 3, Qwen2, Command-R;
// bpe_tokenizer.h). One small interface over both; no LibTorch.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace upcycle::stages {

struct TokenizerTrainOptions {
  int64_t vocab = 1024;            ///< also the vocabulary of pre-tokenized shards
  std::string model_type = "bpe";  ///< bpe | unigram
  int threads = 1;
  uint64_t seed = 0;
  /// Pieces SentencePiece learns when fewer than `vocab` (the model's vocabulary padded beyond its
  /// tokenizer, as Megatron's --make-vocab-size-divisible-by does); 0 = vocab.
  int64_t pieces = 0;
};

/// Trains on the text file `input` (one sentence per line) and writes PREFIX.model and
/// PREFIX.vocab. Throws StageError with sentencepiece's message on failure.
void train_tokenizer(const std::string& input, const std::string& prefix,
                     const TokenizerTrainOptions& opts);

/// The UTF-8 bytes of text each token stands for, to turn nats per token into bits per byte, a
/// figure that does not depend on the tokenizer. A piece covers its own bytes with each "▁" counted
/// as the one space it stands for; a byte-fallback piece covers 1; control and unknown pieces (EOS)
/// cover 0. The first piece of a document (the one after EOS) does not cover the space
/// SentencePiece's dummy prefix put before it, so a document's tokens cover exactly its bytes.
struct TokenBytes {
  std::vector<int32_t> bytes;          ///< per id
  std::vector<uint8_t> leading_space;  ///< per id: the piece starts with a "▁"
  int64_t eos = -1;
  bool dummy_prefix = true;
  /// Bytes covered by token `id` when it follows `prev`.
  int64_t of(uint32_t id, uint32_t prev) const {
    return bytes[id] - (dummy_prefix && prev == eos && leading_space[id] ? 1 : 0);
  }
};

/// A SentencePiece model's special pieces: id -1 (and an empty piece) when it has none.
struct SpecialTokens {
  int64_t bos = -1, eos = -1, unk = -1, pad = -1;
  std::string bos_piece, eos_piece, unk_piece, pad_piece;
};

/// Special tokens among a vocabulary's tokens by their usual names (<|end_of_text|>, </s>,
/// <EOS_TOKEN>, ...), looked up with `id_of` (-1 when absent).
SpecialTokens special_tokens_by_name(const std::function<int64_t(const std::string&)>& id_of);

class BpeTokenizer;

class Tokenizer {
 public:
  /// Loads a SentencePiece .model, or a tokenizer.json (a path ending in .json). Throws
  /// StageError naming the path.
  explicit Tokenizer(const std::string& model_path);
  ~Tokenizer();
  std::vector<uint32_t> encode(const std::string& text) const;
  std::string decode(const std::vector<uint32_t>& ids) const;
  int64_t vocab_size() const;
  /// The end-of-sequence token. Throws StageError for a tokenizer.json that has none.
  uint32_t eos_id() const;
  TokenBytes token_bytes() const;
  SpecialTokens special_tokens() const;

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;  ///< one of the two
  std::unique_ptr<BpeTokenizer> bpe_;
  SpecialTokens bpe_special_;  ///< found once: eos_id() runs per document
};

}  // namespace upcycle::stages
