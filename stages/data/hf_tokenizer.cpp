#include "stages/data/hf_tokenizer.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/error.h"

namespace upcycle::stages {

SpecialTokens write_hf_tokenizer(const std::string& sp_model, const std::string& dir,
                                 int64_t max_length) {
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
