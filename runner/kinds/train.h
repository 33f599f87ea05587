// The recipe side of the training kinds. `train`: one job training a fresh model or continuing one
// (`from`), on a domain mixture. `branch`: one expert per domain from a dense seed (BTX/BAM's
// branch phase). Both plan train jobs (stages/spec/train.h).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runner/recipe.h"
#include "runner/yaml_reader.h"

namespace upcycle::runner {

struct TrainStage : StageParams {
  std::vector<std::string> from;  ///< none (fresh) or one model
  std::map<std::string, double> mix;
  TrainDef train;
};

struct BranchStage : StageParams {
  std::vector<std::string> from;  ///< exactly one dense model
  std::vector<std::string> domains;
  double general_mix = 0.1;  ///< share of general data in each expert's mixture
  TrainDef train;
};

/// The keys a `train:` section and a training stage share.
const std::vector<std::string>& train_setting_keys();
/// Reads the training keys present in `r` over `defaults` and validates them with the train spec's
/// own rules, naming the YAML key of a bad value.
TrainDef parse_train(const YamlReader& r, TrainDef defaults);

}  // namespace upcycle::runner
