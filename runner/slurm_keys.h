// The `slurm:` section of a recipe (defaults for every job) and of a stage (overrides, key by key),
// read into cluster::SlurmResources and validated there, errors at the YAML key. Not part of any
// job's key: where a job runs is not what it computes.
#pragma once

#include "cluster/slurm_resources.h"
#include "runner/yaml_reader.h"

namespace upcycle::runner {

/// The keys present in `r` over `base`. Throws ConfigError naming file, line and key.
cluster::SlurmResources parse_slurm(const YamlReader& r, cluster::SlurmResources base);

}  // namespace upcycle::runner
