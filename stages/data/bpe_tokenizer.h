// A byte-level BPE tokenizer read from a Hugging Face tokenizer.json (GPT-2, Llama 3, Qwen2,
// Command-R style): added tokens, the normalizer (NFC or none), the pre-tokenizer
// (bpe_pretokenize.h) and the BPE model (vocab, merges, ignore_merges), encoding token for token
// as the `tokenizers` library does with `add_special_tokens=False`
// (tests/interop/bpe_referee_test). No LibTorch.
//
// Encoding adds no BOS or EOS (the post-processor is not run): upcycle trains and scores without
// them. Added tokens in the text are matched as tokenizers matches them (leftmost, longest; lstrip
// and rstrip absorb neighbouring whitespace), so "<|endoftext|>" in a document becomes that token.
// Ill-formed UTF-8 is first replaced by U+FFFD per maximal subpart, as Python's decoder does.
// Anything in the file that would change the tokens and is not implemented (a WordPiece model,
// BPE dropout, byte fallback, a Metaspace pre-tokenizer, a normalizer other than NFC, a
// single_word added token) is refused when the file is read, naming the key.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace upcycle::stages {

namespace bpe {
class PreTokenizer;
}

class BpeTokenizer {
 public:
  /// Reads `path`. Throws StageError naming the file and the key it refuses or cannot read.
  explicit BpeTokenizer(const std::string& path);
  ~BpeTokenizer();
  BpeTokenizer(BpeTokenizer&&) noexcept;

  std::vector<uint32_t> encode(std::string_view text) const;
  /// The bytes the ids stand for (added tokens: their content). Throws StageError on an unknown id.
  std::string decode(const std::vector<uint32_t>& ids) const;
  /// One more than the largest id of the vocabulary and the added tokens.
  int64_t vocab_size() const { return static_cast<int64_t>(bytes_.size()); }
  /// The bytes of token `id` (empty for an id no token has).
  const std::string& token(uint32_t id) const { return bytes_[id]; }
  /// The id of the added token `content`, or -1.
  int64_t added_id(std::string_view content) const;
  /// Whether `id` is an added token marked special (BOS, EOS, chat markers).
  bool is_special(uint32_t id) const;

 private:
  struct Added {
    std::string content;
    uint32_t id = 0;
    bool lstrip = false, rstrip = false, normalized = false, special = false;
  };
  struct Merge {
    uint32_t rank = 0, id = 0;
  };

  void read_model(const nlohmann::json& model, const std::string& where);
  void read_added(const nlohmann::json& added, const std::string& where);
  /// Cuts `text` at the added tokens with this `normalized` flag: `gap` for the text between
  /// them, `out` gets each one's id.
  template <typename Gap>
  void split_added(std::string_view text, bool normalized, std::vector<uint32_t>& out,
                   Gap&& gap) const;
  void encode_segment(std::string_view text, std::vector<uint32_t>& out) const;
  void encode_word(std::string_view word, std::vector<uint32_t>& out) const;

  std::vector<std::string> bytes_;                 ///< per id
  std::array<uint32_t, 256> byte_id_{};            ///< the token of each single byte
  std::unordered_map<std::string, uint32_t> ids_;  ///< the model's vocabulary, by bytes
  std::unordered_map<uint64_t, Merge> merges_;     ///< by (left id << 32 | right id)
  std::vector<Added> added_;                       ///< longest first
  std::vector<uint8_t> special_;                   ///< per id: an added token marked special
  std::array<std::vector<uint32_t>, 256> first_;   ///< indices into added_ by first byte
  bool ignore_merges_ = false;
  bool nfc_ = false;
  std::unique_ptr<const bpe::PreTokenizer> pre_;
};

/// GPT-2's byte-to-unicode map: the printable characters a byte-level vocabulary spells byte b
/// with (UTF-8).
const std::array<std::string, 256>& byte_level_chars();

}  // namespace upcycle::stages
