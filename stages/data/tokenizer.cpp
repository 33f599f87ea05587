#include "stages/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>

#include "core/error.h"

namespace upcycle::stages {

void train_tokenizer(const std::string& input, const std::string& prefix,
                     const TokenizerTrainOptions& opts) {
  // Arguments are a map, not a command string, so paths with spaces or '--' cannot inject flags.
  std::unordered_map<std::string, std::string> args = {
      {"input", input},
      {"model_prefix", prefix},
      {"vocab_size", std::to_string(opts.pieces > 0 ? opts.pieces : opts.vocab)},
      {"model_type", opts.model_type},
      {"byte_fallback", "true"},
      {"character_coverage", "0.9995"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"max_sentence_length", "16384"},
      {"num_threads", std::to_string(opts.threads)},
      {"shuffle_input_sentence", "false"},
      {"minloglevel", "2"},
  };
  auto status = sentencepiece::SentencePieceTrainer::Train(args);
  if (!status.ok()) {
    throw StageError("training the tokenizer on " + input + " failed: " + status.ToString(),
                     "a vocab larger than the sample supports fails; lower data.tokenizer.vocab");
  }
}

Tokenizer::Tokenizer(const std::string& model_path)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  auto status = sp_->Load(model_path);
  if (!status.ok()) throw StageError(model_path + ": cannot load tokenizer: " + status.ToString());
}

Tokenizer::~Tokenizer() = default;

std::vector<uint32_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw StageError("tokenizer encode failed: " + status.ToString());
  return std::vector<uint32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  std::string out;
  sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &out);
  return out;
}

int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }
uint32_t Tokenizer::eos_id() const { return static_cast<uint32_t>(sp_->eos_id()); }

SpecialTokens Tokenizer::special_tokens() const {
  SpecialTokens st;
  auto piece = [&](int id, int64_t& out, std::string& name) {
    if (id < 0 || id >= sp_->GetPieceSize()) return;
    out = id;
    name = sp_->IdToPiece(id);
  };
  piece(sp_->bos_id(), st.bos, st.bos_piece);
  piece(sp_->eos_id(), st.eos, st.eos_piece);
  piece(sp_->unk_id(), st.unk, st.unk_piece);
  piece(sp_->pad_id(), st.pad, st.pad_piece);
  return st;
}

TokenBytes Tokenizer::token_bytes() const {
  static const std::string kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's whitespace mark
  TokenBytes tb;
  tb.eos = sp_->eos_id();
  const int n = sp_->GetPieceSize();
  tb.bytes.resize(static_cast<size_t>(n));
  tb.leading_space.resize(static_cast<size_t>(n));
  for (int id = 0; id < n; ++id) {
    const std::string piece = sp_->IdToPiece(id);
    int32_t b = 0;
    if (sp_->IsByte(id)) {
      b = 1;
    } else if (!sp_->IsControl(id) && !sp_->IsUnknown(id)) {
      for (size_t i = 0; i < piece.size(); ++i) {
        if (piece.compare(i, kSpace.size(), kSpace) == 0) i += kSpace.size() - 1;
        ++b;
      }
    }
    tb.bytes[static_cast<size_t>(id)] = b;
    tb.leading_space[static_cast<size_t>(id)] = piece.rfind(kSpace, 0) == 0;
  }
  // Whether encoding adds a dummy "▁" before a text: its first piece then starts with one.
  const std::vector<uint32_t> a = encode("a");
  tb.dummy_prefix = !a.empty() && tb.leading_space[a[0]];
  return tb;
}

}  // namespace upcycle::stages
