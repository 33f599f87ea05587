// Why each planned job will or will not run, for `upcycle plan`: complete (its key is done), never
// run (no job of its stage in the store), or changed: the keyed fields that differ from the last
// job of the same stage in the store (what its key hashed is kept as the job's config).
#pragma once

#include <string>
#include <vector>

#include "runner/plan.h"
#include "tracking/store.h"

namespace upcycle::runner {

/// One line per job of `plan`, in order. `store` may be null (no store yet: nothing has run).
std::vector<std::string> explain_plan(const Plan& plan, tracking::Store* store);

/// The dotted paths whose values differ between two JSON documents ("spec.optim.lr", "inputs[1]").
std::vector<std::string> differing_fields(const nlohmann::json& a, const nlohmann::json& b);

}  // namespace upcycle::runner
