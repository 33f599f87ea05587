// `upcycle resume`: the runs a stopped runner left unfinished, rebuilt from the store alone. Each
// run's fully resolved recipe is in its provenance, so a resume needs neither the recipe file nor
// the overrides of the original command, and an edited recipe file cannot change what resumes.
#pragma once

#include <string>
#include <vector>

#include "runner/run.h"
#include "tracking/store.h"

namespace upcycle::runner {

/// The runs named (or, when `names` is empty, every run not "done"), each re-planned from its
/// stored recipe with the store and job root it ran with. Throws StoreError naming an unknown run
/// or a run without a stored recipe.
std::vector<RunPoint> runs_to_resume(tracking::Store& store, const std::vector<std::string>& names);

}  // namespace upcycle::runner
