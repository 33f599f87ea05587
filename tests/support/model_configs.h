// Small model configs for tests: one place for the sizes, overridable per test.
#pragma once

#include "stages/arch/config.h"

namespace upcycle::testing {

/// A dense config small enough for exact CPU checks: d 32, 2 layers, 4 heads over 2 KV heads (GQA),
/// SwiGLU 48, vocab 97, seq 16.
inline stages::ModelConfig small_config(int64_t vocab = 97, int64_t layers = 2) {
  stages::ModelConfig c;
  c.d_model = 32;
  c.layers = layers;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn_hidden = 48;
  c.vocab = vocab;
  c.seq_len = 16;
  return c;
}

}  // namespace upcycle::testing
