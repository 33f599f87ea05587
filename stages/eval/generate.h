// Greedy decoding, with or without a KV cache; the same tokens either way
// (tests/stages/kv_cache_test.cpp).
//   without a cache  every step runs the last seq_len tokens (positions 0 .. seq_len-1)
//   with a cache     the prompt runs once, then one token per step attends to the cached keys and
//                    values; once the sequence outgrows seq_len every step runs the last seq_len
//                    tokens again, as without a cache, so the positions stay the same
//   batched          several prompts at once, left-padded into one batch with a cache
//   (KvCache::pad_B):
//                    the same tokens as each prompt alone, for one step's overhead per batch
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
  /// Called with a prompt's index and the tokens generated for it so far, after each new token;
  /// true stops that prompt's generation.
  std::function<bool(size_t prompt, const std::vector<uint32_t>& generated)> stop;
};

/// The tokens a greedy decoder appends to `prompt` (not empty), without the EOS that ends it.
std::vector<uint32_t> generate_greedy(TransformerLm& model, std::vector<uint32_t> prompt,
                                      const GreedyOptions& opts);

/// generate_greedy for each prompt, computed as one left-padded batch with a KV cache when every
/// prompt plus max_new_tokens fits in seq_len (else, or without kv_cache, one prompt at a time).
std::vector<std::vector<uint32_t>> generate_greedy_batch(
    TransformerLm& model, const std::vector<std::vector<uint32_t>>& prompts,
    const GreedyOptions& opts);

}  // namespace upcycle::stages
