#include "stages/data/hf_tokenizer.h"

#include <algorithm>
#include <filesystem>
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

// The id of the added token `content`, or -1.
int64_t added_token_id(const nlohmann::json& tok, const std::string& content) {
  if (!tok.contains("added_tokens") || !tok["added_tokens"].is_array()) return -1;
  for (const auto& t : tok["added_tokens"]) {
    if (t.value("content", "") == content) return t.value("id", int64_t(-1));
  }
  return -1;
}

SpecialTokens write_tokenizer_json(const std::string& path, const std::string& dir,
                                   int64_t max_length) {
  const nlohmann::json tok = read_tokenizer_json(path);
  SpecialTokens st =
      special_tokens_by_name([&](const std::string& name) { return added_token_id(tok, name); });
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
                                 int64_t max_length, const char* sp_decoder_py) {
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
  if (sp_decoder_py != nullptr) {  // AutoTokenizer takes it with trust_remote_code=True
    config["auto_map"] = {
        {"AutoTokenizer", {"tokenization_upcycle.UpcycleSentencePieceTokenizer", nullptr}}};
  }
  try {
    if (sp_decoder_py != nullptr)
      core::write_file_atomic(dir + "/tokenization_upcycle.py", sp_decoder_py);
    core::write_file_atomic(dir + "/" + kHfTokenizerModel, core::read_file(sp_model));
    core::write_file_atomic(dir + "/tokenizer_config.json", config.dump(2) + "\n");
    core::write_file_atomic(dir + "/special_tokens_map.json", special.dump(2) + "\n");
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  return st;
}

std::string hf_tokenizer_file(const std::string& dir) {
  std::string model = dir + "/" + kHfTokenizerModel, json = dir + "/tokenizer.json";
  if (std::filesystem::is_regular_file(model)) return model;
  if (std::filesystem::is_regular_file(json)) {
    const Tokenizer check(json);  // refuses what bpe_tokenizer.h cannot encode exactly, naming it
    (void)check.eos_id();         // and one without an end-of-sequence token
    return json;
  }
  throw StageError(dir + ": no tokenizer.model (SentencePiece) or tokenizer.json (byte-level BPE)",
                   "a Hugging Face checkpoint directory ships one of them");
}

}  // namespace upcycle::stages
