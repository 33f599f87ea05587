#include "stages/data/tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <unordered_map>

#include "core/error.h"
#include "core/strings.h"
#include "stages/data/bpe_tokenizer.h"

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

namespace {

// The usual names of each special token, the likeliest first.
const std::vector<const char*> kBosNames = {"<|begin_of_text|>", "<s>", "<bos>", "<BOS_TOKEN>",
                                            "<|endoftext|>"};
const std::vector<const char*> kEosNames = {
    "<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<EOS_TOKEN>", "<|im_end|>", "<|eot_id|>"};
const std::vector<const char*> kUnkNames = {"<unk>", "<|unk|>", "<UNK>"};
const std::vector<const char*> kPadNames = {"<pad>", "<|pad|>", "[PAD]", "<PAD>"};

}  // namespace

SpecialTokens special_tokens_by_name(const std::function<int64_t(const std::string&)>& id_of) {
  auto find = [&](const std::vector<const char*>& names, int64_t& id, std::string& piece) {
    for (const char* name : names) {
      if ((id = id_of(name)) >= 0) {
        piece = name;
        return;
      }
    }
  };
  SpecialTokens st;
  find(kBosNames, st.bos, st.bos_piece);
  find(kEosNames, st.eos, st.eos_piece);
  find(kUnkNames, st.unk, st.unk_piece);
  find(kPadNames, st.pad, st.pad_piece);
  return st;
}

Tokenizer::Tokenizer(const std::string& model_path) : path_(model_path) {
  if (core::ends_with(model_path, ".json")) {
    bpe_ = std::make_unique<BpeTokenizer>(model_path);
    bpe_special_ =
        special_tokens_by_name([&](const std::string& name) { return bpe_->added_id(name); });
    return;
  }
  sp_ = std::make_unique<sentencepiece::SentencePieceProcessor>();
  auto status = sp_->Load(model_path);
  if (!status.ok()) throw StageError(model_path + ": cannot load tokenizer: " + status.ToString());
}

Tokenizer::~Tokenizer() = default;

std::vector<uint32_t> Tokenizer::encode(const std::string& text) const {
  if (bpe_) return bpe_->encode(text);
  std::vector<int> ids;
  auto status = sp_->Encode(text, &ids);
  if (!status.ok()) throw StageError("tokenizer encode failed: " + status.ToString());
  return std::vector<uint32_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<uint32_t>& ids) const {
  if (bpe_) return bpe_->decode(ids);
  std::string out;
  sp_->Decode(std::vector<int>(ids.begin(), ids.end()), &out);
  return out;
}

int64_t Tokenizer::vocab_size() const { return bpe_ ? bpe_->vocab_size() : sp_->GetPieceSize(); }

uint32_t Tokenizer::eos_id() const {
  if (!bpe_) return static_cast<uint32_t>(sp_->eos_id());
  if (bpe_special_.eos < 0) {
    std::string names;
    for (const char* n : kEosNames) names += std::string(names.empty() ? "" : ", ") + n;
    throw StageError(path_ + ": no end-of-sequence token among its added tokens",
                     "upcycle looks for one of " + names);
  }
  return static_cast<uint32_t>(bpe_special_.eos);
}

SpecialTokens Tokenizer::special_tokens() const {
  if (bpe_) return bpe_special_;
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
  if (bpe_) {  // a token covers its bytes; special tokens (EOS) cover none
    TokenBytes tb;
    tb.eos = special_tokens().eos;
    tb.dummy_prefix = false;
    tb.bytes.resize(static_cast<size_t>(bpe_->vocab_size()));
    tb.leading_space.assign(tb.bytes.size(), 0);
    for (uint32_t id = 0; id < tb.bytes.size(); ++id) {
      tb.bytes[id] = bpe_->is_special(id) ? 0 : static_cast<int32_t>(bpe_->token(id).size());
    }
    return tb;
  }
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
