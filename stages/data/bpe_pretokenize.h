// The normalizer and pre-tokenizer of a Hugging Face tokenizer.json, as byte-level BPE tokenizers
// (GPT-2, Llama 3, Qwen2, Command-R) use them. No LibTorch.
//
// Pre-tokenization cuts a text into the pieces BPE merges within: `Split` steps with a regex
// (Oniguruma syntax in the file; run here with PCRE2, `\s` narrowed to Oniguruma's White_Space
// set), `Digits`, and `ByteLevel` (GPT-2's regex when `use_regex`, a space prepended to each piece
// when `add_prefix_space`), in the file's order. Steps and options that change the pieces in other
// ways are refused when the file is read, naming the key.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace upcycle::stages::bpe {

/// A compiled PCRE2 pattern (UTF, Unicode properties, JIT).
class Regex;

/// One step of the pre-tokenizer.
struct PreStep {
  enum class Kind { kSplit, kDigits, kByteLevel };
  Kind kind = Kind::kSplit;
  std::shared_ptr<const Regex> regex;  ///< kSplit, kByteLevel with use_regex
  bool remove_matches = false;         ///< kSplit: behavior Removed (else Isolated)
  bool individual_digits = false;      ///< kDigits
  bool add_prefix_space = false;       ///< kByteLevel
};

using PieceFn = std::function<void(std::string_view)>;

class PreTokenizer {
 public:
  /// Reads the `pre_tokenizer` value (`where` names it in errors). Throws StageError naming the
  /// key of an unsupported type or option, or a pattern PCRE2 does not compile. Requires one
  /// ByteLevel step, after every Split and Digits step.
  static PreTokenizer from_json(const nlohmann::json& pre, const std::string& where);

  /// Calls `fn` with each non-empty piece of `text` in order (a view into `text`, or into a copy
  /// with a prepended space, valid during the call).
  void split(std::string_view text, const PieceFn& fn) const;

 private:
  void apply(size_t step, std::string_view text, const PieceFn& fn) const;
  std::vector<PreStep> steps_;
};

/// `text` in Unicode normalisation form C (utf8proc). `text` must be valid UTF-8.
std::string nfc(std::string_view text);

/// Oniguruma's `\s` (White_Space) in a pattern PCRE2 compiles: PCRE2's also matches U+180E.
/// Throws StageError naming `where` for a `\S` inside a character class.
std::string onig_to_pcre2(std::string_view pattern, const std::string& where);

}  // namespace upcycle::stages::bpe
