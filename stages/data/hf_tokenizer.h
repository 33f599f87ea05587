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
// A pre-tokenized corpus may come with a Hugging Face tokenizer.json instead (data.tokenizer.path):
// export then ships that file as it is, with a `PreTrainedTokenizerFast` config.
//
// Import takes `tokenizer.model`, or else a byte-level BPE `tokenizer.json` (Llama 3, Qwen2,
// SmolLM2, Command-R: bpe_tokenizer.h), which then tokenizes the recipe's text.
#pragma once

#include <cstdint>
#include <string>

#include "stages/data/tokenizer.h"

namespace upcycle::stages {

inline constexpr const char* kHfTokenizerModel = "tokenizer.model";

/// Writes the tokenizer files of `tokenizer` into `dir`: for a SentencePiece model, the three
/// files above; for a Hugging Face tokenizer.json (a pre-tokenized corpus's own tokenizer), the
/// file itself and a tokenizer_config.json for `PreTrainedTokenizerFast`, its special tokens found
/// among the added tokens by their usual names. Returns the special tokens.
/// With `sp_decoder_py` (for a SentencePiece model) it also writes that Python as
/// tokenization_upcycle.py and names its UpcycleSentencePieceTokenizer in the config's auto_map.
SpecialTokens write_hf_tokenizer(const std::string& tokenizer, const std::string& dir,
                                 int64_t max_length, const char* sp_decoder_py = nullptr);

/// The number of token ids `tokenizer` (a SentencePiece .model or a tokenizer.json) can produce:
/// the model's pieces, or one more than the largest id of a tokenizer.json's vocabulary and added
/// tokens. Throws StageError naming the file when it cannot be read.
int64_t tokenizer_file_vocab(const std::string& tokenizer);

/// The tokenizer of checkpoint DIR: DIR/tokenizer.model (SentencePiece), else DIR/tokenizer.json
/// when it is a byte-level BPE upcycle encodes exactly and names an end-of-sequence token. Throws
/// StageError naming the file and key it refuses, or DIR when it has neither.
std::string hf_tokenizer_file(const std::string& dir);

}  // namespace upcycle::stages
