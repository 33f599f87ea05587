// Where the prepare stage puts things, so that train and eval find them.
#pragma once

#include <string>

namespace upcycle::stages {

inline std::string tokenizer_path(const std::string& data_dir) {
  return data_dir + "/tokenizer.model";
}
/// A pre-tokenized corpus's own tokenizer when it is a Hugging Face tokenizer.json
/// (data.tokenizer.path); a SentencePiece one is tokenizer_path().
inline std::string tokenizer_json_path(const std::string& data_dir) {
  return data_dir + "/tokenizer.json";
}
inline std::string manifest_path(const std::string& data_dir) {
  return data_dir + "/manifest.json";
}
inline std::string shard_path(const std::string& data_dir, const std::string& domain,
                              const std::string& split) {
  return data_dir + "/shards/" + domain + "." + split + ".bin";
}

}  // namespace upcycle::stages
