// `upcycle params`: total and active parameters of every model a recipe produces.
#pragma once

#include <string>

#include "runner/plan.h"

namespace upcycle::runner {

/// One row per model-producing job (or only `stage`), as a table or as stable JSON:
///   [{"model": "bam", "total": N, "active": N, "embedding": N, "attention": N, "ffn": N,
///     "routers": N, "norms": N}, ...]
/// Throws ConfigError for an unknown stage or format.
std::string params_report(const Plan& plan, const std::string& stage, const std::string& format);

}  // namespace upcycle::runner
