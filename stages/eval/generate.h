// Greedy decoding, with or without a KV cache; the same tokens either way (tests/stages_model/kv_cache_test.cpp).
//   without a cache  every step runs the last seq_len tokens (positions 0 .. seq_len-1)
//   with a cache     the prompt runs once, then one token per step attends to the cached keys and
//                    values; once the sequence outgrows seq_len every step runs the last seq_len
//                    tokens again, as without a cache, so the positions stay the same
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "stages/model/transformer.h"

namespace upcycle::stages {

struct GreedyOptions {
  int64_t max_new_tokens = 32;
  bool kv_cache = true;
  int64_t eos = -1;  ///< stop before this token; -1: none
  /// Called with the tokens generated so far after each new token; true stops generation.
  std::function<bool(const std::vector<uint32_t>&)> stop;
};

/// The tokens a greedy decoder appends to `prompt` (not empty), without the EOS that ends it.
std::vector<uint32_t> generate_greedy(TransformerLm& model, std::vector<uint32_t> prompt, const GreedyOptions& opts);

}  // namespace upcycle::stages
