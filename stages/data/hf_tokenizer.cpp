#include "stages/data/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/strings.h"

namespace upcycle::stages {

namespace {

nlohmann::json read_tokenizer_json(const std::string& path) {
  try {
    return core::read_json_file(path);
  } catch (const Error& e) {
    throw StageError(std::string(e.what()), "expected a Hugging Face tokenizer.json");
  }
}

// The first of `names` among the added tokens: its id and text, or {-1, ""}.
std::pair<int64_t, std::string> added_token(const nlohmann::json& tok,
                                            const std::vector<const char*>& names) {
  if (!tok.contains("added_tokens") || !tok["added_tokens"].is_array()) return {-1, ""};
  for (const char* name : names) {
    for (const auto& t : tok["added_tokens"]) {
      if (t.value("content", "") == name) return {t.value("id", int64_t(-1)), name};
    }
  }
  return {-1, ""};
}

SpecialTokens write_tokenizer_json(const std::string& path, const std::string& dir,
                                   int64_t max_length) {
  const nlohmann::json tok = read_tokenizer_json(path);
  SpecialTokens st;
  std::tie(st.bos, st.bos_piece) =
      added_token(tok, {"<|begin_of_text|>", "<s>", "<bos>", "<|endoftext|>"});
  std::tie(st.eos, st.eos_piece) = added_token(
      tok, {"<|end_of_text|>", "<|endoftext|>", "</s>", "<eos>", "<|im_end|>", "<|eot_id|>"});
  std::tie(st.unk, st.unk_piece) = added_token(tok, {"<unk>", "<|unk|>"});
  std::tie(st.pad, st.pad_piece) = added_token(tok, {"<pad>", "<|pad|>", "[PAD]"});
  auto piece = [](const std::string& p) {
    return p.empty() ? nlohmann::json(nullptr) : nlohmann::json(p);
  };
  nlohmann::json special = {{"bos_token", piece(st.bos_piece)},
                            {"eos_token", piece(st.eos_piece)},
                            {"unk_token", piece(st.unk_piece)},
                            {"pad_token", piece(st.pad_piece)}};
  nlohmann::json config = special;
  config.update({{"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"model_max_length", max_length},
                 {"clean_up_tokenization_spaces", false}});
  try {
    core::write_file_atomic(dir + "/tokenizer.json", core::read_file(path));
    core::write_file_atomic(dir + "/tokenizer_config.json", config.dump(2) + "\n");
    core::write_file_atomic(dir + "/special_tokens_map.json", special.dump(2) + "\n");
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  return st;
}

}  // namespace

int64_t tokenizer_file_vocab(const std::string& tokenizer) {
  if (!core::ends_with(tokenizer, ".json")) return Tokenizer(tokenizer).vocab_size();
  const nlohmann::json tok = read_tokenizer_json(tokenizer);
  int64_t top = -1;
  try {
    for (const auto& [piece, id] : tok.at("model").at("vocab").items())
      top = std::max(top, id.get<int64_t>());
    if (tok.contains("added_tokens")) {
      for (const auto& t : tok["added_tokens"]) top = std::max(top, t.at("id").get<int64_t>());
    }
  } catch (const nlohmann::json::exception& e) {
    throw StageError(tokenizer + ": not a tokenizer.json with model.vocab: " + e.what());
  }
  return top + 1;
}

SpecialTokens write_hf_tokenizer(const std::string& tokenizer, const std::string& dir,
                                 int64_t max_length) {
  if (core::ends_with(tokenizer, ".json")) return write_tokenizer_json(tokenizer, dir, max_length);
  const std::string& sp_model = tokenizer;
  const Tokenizer tok(sp_model);
  SpecialTokens st = tok.special_tokens();
  auto piece = [](const std::string& p) {
    return p.empty() ? nlohmann::json(nullptr) : nlohmann::json(p);
  };
  nlohmann::json special = {{"bos_token", piece(st.bos_piece)},
                            {"eos_token", piece(st.eos_piece)},
                            {"unk_token", piece(st.unk_piece)},
                            {"pad_token", piece(st.pad_piece)}};
  nlohmann::json config = special;
  config.update({{"tokenizer_class", "SentencePieceBackend"},
                 {"add_bos_token", false},
                 {"add_eos_token", false},
                 {"legacy", true},
                 {"model_max_length", max_length},
                 {"clean_up_tokenization_spaces", false},
                 {"sp_model_kwargs", nlohmann::json::object()}});
  try {
    core::write_file_atomic(dir + "/" + kHfTokenizerModel, core::read_file(sp_model));
    core::write_file_atomic(dir + "/tokenizer_config.json", config.dump(2) + "\n");
    core::write_file_atomic(dir + "/special_tokens_map.json", special.dump(2) + "\n");
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  return st;
}

std::string hf_tokenizer_model(const std::string& dir) {
  std::string path = dir + "/" + kHfTokenizerModel;
  if (std::filesystem::is_regular_file(path)) return path;
  if (std::filesystem::exists(dir + "/tokenizer.json")) {
    throw StageError(dir +
                     ": has tokenizer.json but no tokenizer.model; upcycle tokenizes with "
                     "SentencePiece, so only "
                     "checkpoints with a SentencePiece tokenizer.model can be imported (Llama 1/2, "
                     "Mistral, Mixtral, ...)");
  }
  throw StageError(dir +
                   ": no tokenizer.model (a SentencePiece model) to import the tokenizer from");
}

}  // namespace upcycle::stages
