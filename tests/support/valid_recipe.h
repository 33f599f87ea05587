// The small valid recipe the bad-input tests (bad_input_test.cpp, bad_recipe_test.cpp) break one
// thing at a time: data, a seed, two experts, BAM and eval, at a size that plans instantly.
#pragma once

namespace upcycle::testing {

inline const char* kValid = R"(name: t
seed: 3
data:
  domains: [general, code, math]
  tokenizer: { vocab: 512 }
model: { d_model: 64, layers: 2, heads: 4, kv_heads: 4, ffn_hidden: 128, seq_len: 32 }
train: { batch_size: 4 }
stages:
  data: { kind: prepare }
  seed: { kind: train, mix: { general: 1.0 }, budget: { tokens: 4k } }
  experts: { kind: branch, from: seed, domains: [code, math], budget: { tokens: 2k } }
  bam: { kind: upcycle, method: bam, from: [seed, experts] }
  eval: { kind: eval, models: [seed, bam] }
)";

}  // namespace upcycle::testing
