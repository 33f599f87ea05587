// Real text for torch tests without a tokenizer: generated math documents as byte tokens (vocab
// 256), written as DATA_DIR/shards/<domain>.<split>.bin in the prepare stage's layout.
#pragma once

#include <string>
#include <vector>

#include "core/atomic_file.h"
#include "stages/data/data_layout.h"
#include "stages/data/math_problems.h"
#include "stages/data/token_shard.h"

namespace upcycle::testing {

inline void write_byte_shards(const std::string& data_dir, const std::string& domain = "math",
                              int64_t bytes_per_split = 20000) {
  core::make_dirs(data_dir + "/shards");
  uint64_t seed = 1;
  for (const char* split : {"train", "valid", "test"}) {
    std::vector<uint32_t> tokens;
    for (const auto& d : stages::generate_math_documents(seed++, bytes_per_split)) {
      for (unsigned char ch : d.text) tokens.push_back(ch);
    }
    stages::write_token_shard(stages::shard_path(data_dir, domain, split), tokens, 256);
  }
}

}  // namespace upcycle::testing
