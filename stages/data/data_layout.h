// Where the prepare stage puts things, so that train and eval find them.
#pragma once

#include <string>

namespace upcycle::stages {

inline std::string tokenizer_path(const std::string& data_dir) {
  return data_dir + "/tokenizer.model";
}
inline std::string manifest_path(const std::string& data_dir) {
  return data_dir + "/manifest.json";
}
inline std::string shard_path(const std::string& data_dir, const std::string& domain,
                              const std::string& split) {
  return data_dir + "/shards/" + domain + "." + split + ".bin";
}

}  // namespace upcycle::stages
