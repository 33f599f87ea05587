// Parameter accounting from a ModelConfig alone (no LibTorch): total and active parameters.
// Convention for "active" (documented in docs/accounting.md): parameters touched by one token's forward
// pass. Soft-routed attention experts are all active; top-k routed experts count k of E; every router
// that runs counts. This differs from the paper's BAM active figure by one router (papers.md §1.3).
#pragma once

#include <cstdint>

#include "stages/model/config.h"

namespace upcycle::stages {

struct ParamCount {
  int64_t total = 0;
  int64_t active = 0;
  int64_t embedding = 0;   ///< input embedding + untied output head
  int64_t attention = 0;   ///< all attention experts, all layers
  int64_t ffn = 0;         ///< all FFN experts, all layers
  int64_t routers = 0;
  int64_t norms = 0;
};

/// Exact parameter count of the model ModelConfig describes; equals the sum of its tensors' numel().
ParamCount count_params(const ModelConfig& c);

}  // namespace upcycle::stages
