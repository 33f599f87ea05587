// The tokenizer files of a Hugging Face checkpoint, for our SentencePiece models. No LibTorch.
//
// Export writes `tokenizer.model` (our SentencePiece model, byte for byte), `tokenizer_config.json`
// and `special_tokens_map.json`. The config names transformers' `SentencePieceBackend`, which runs
// the sentencepiece library itself and so encodes exactly as upcycle does; `LlamaTokenizer` in
// transformers 5 converts the model to a `tokenizers` BPE that differs from SentencePiece on
// leading spaces and runs of whitespace (20 of 171 strings of a test corpus), which would make an
// outside referee score other tokens than ours. No BOS or EOS is added: upcycle trains and scores
// without them.
//
// Import reads `tokenizer.model`; a checkpoint with only `tokenizer.json` (a byte-level BPE such as
// Llama 3's or Cohere's) is refused: the data pipeline tokenizes with SentencePiece.
#pragma once

#include <cstdint>
#include <string>

#include "stages/data/tokenizer.h"

namespace upcycle::stages {

inline constexpr const char* kHfTokenizerModel = "tokenizer.model";

/// Writes the three tokenizer files for `sp_model` into `dir`. Returns its special tokens.
SpecialTokens write_hf_tokenizer(const std::string& sp_model, const std::string& dir,
                                 int64_t max_length);

/// DIR/tokenizer.model when DIR has a SentencePiece model. Throws StageError naming DIR and what it
/// has instead.
std::string hf_tokenizer_model(const std::string& dir);

}  // namespace upcycle::stages
