// The model config an upcycling method produces from a dense config (no LibTorch, so that `plan` and
// `params` can compute it without running anything).
#pragma once

#include <string>

#include "stages/model/config.h"

namespace upcycle::stages {

/// method bam: attn_experts = ffn_experts = n; btx: ffn_experts = n, dense attention;
/// sparse: ffn_experts from `mixture`, dense attention. Routing fields are taken from `mixture`.
/// Throws std::invalid_argument ("key: reason") on an unknown method or an invalid result.
ModelConfig upcycled_config(const std::string& method, const ModelConfig& dense,
                            const ModelConfig& mixture, int64_t n);

}  // namespace upcycle::stages
