// Synthetic math documents with worked solutions, in the spirit of MathGLM's arithmetic data (which
// the BAM paper's math domain includes): multi-digit arithmetic with carried steps, long division,
// order of operations, fractions and linear equations. Deterministic in the seed.
#pragma once

#include <cstdint>
#include <vector>

#include "stages/data/documents.h"

namespace upcycle::stages {

/// Generates documents (each a few worked problems) until about `target_bytes` of text.
std::vector<Document> generate_math_documents(uint64_t seed, int64_t target_bytes);

}  // namespace upcycle::stages
