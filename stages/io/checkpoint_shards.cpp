#include "stages/io/checkpoint_shards.h"

#include <torch/torch.h>

#include <algorithm>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace upcycle::stages {
namespace {

std::string shard_name(const char* stem, int rank, int world) {
  if (world == 1) return std::string(stem) + ".safetensors";
  char name[96];
  std::snprintf(name, sizeof name, "%s-%05d-of-%05d.safetensors", stem, rank + 1, world);
  return name;
}

}  // namespace

std::string weight_shard_name(int rank, int world) { return shard_name("model", rank, world); }
std::string optimizer_shard_name(int rank, int world) {
  return shard_name("optimizer", rank, world);
}

std::vector<size_t> split_evenly(const std::vector<int64_t>& sizes, int parts) {
  int64_t total = 0;
  for (int64_t s : sizes) total += s;
  // Run r ends at the first item whose end passes (r + 1) / parts of the total.
  std::vector<size_t> bounds = {0};
  int64_t done = 0;
  size_t i = 0;
  for (int r = 1; r < parts; ++r) {
    const double target = double(total) * r / parts;
    while (i < sizes.size() && double(done) + double(sizes[i]) / 2 <= target) done += sizes[i++];
    bounds.push_back(i);
  }
  bounds.push_back(sizes.size());
  return bounds;
}

ShardFile write_weight_shard(const std::string& tmp, TransformerLm& model, int rank, int world) {
  auto views = state_views(model);
  std::vector<int64_t> bytes;
  for (const auto& [name, t] : views) bytes.push_back(t.numel() * int64_t(t.element_size()));
  const std::vector<size_t> b = split_evenly(bytes, world);
  const std::vector<std::pair<std::string, at::Tensor>> mine(views.begin() + b[rank],
                                                             views.begin() + b[rank + 1]);
  return write_weights_file(tmp, weight_shard_name(rank, world), mine, model->config);
}

ShardFile write_optimizer_shard(const std::string& tmp, const std::vector<MomentPiece>& pieces,
                                int rank, int world) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  nlohmann::json steps = nlohmann::json::object();
  for (const auto& p : pieces) {
    steps[p.param] = p.step;
    const std::string at = ":" + std::to_string(p.lo) + ":" + p.param;
    tensors.emplace_back(kMomentNames[0] + at, p.exp_avg);
    tensors.emplace_back(kMomentNames[1] + at, p.exp_avg_sq);
    if (p.master.defined()) tensors.emplace_back(kMomentNames[2] + at, p.master);
  }
  const std::string file = optimizer_shard_name(rank, world);
  const WrittenFile w =
      write_safetensors_streamed(tmp + "/" + file, tensors, {{"steps", steps.dump()}});
  return {file, w.sha256, w.bytes};
}

OptimizerStateReader::OptimizerStateReader(const std::string& dir, const CheckpointMeta& meta)
    : dir_(dir), files_(meta.optimizer), verified_(meta.optimizer.size(), false) {
  for (size_t f = 0; f < files_.size(); ++f) {
    open_.push_back(std::make_unique<SafetensorsFile>(dir + "/" + files_[f].file));
    try {
      const auto& md = open_.back()->metadata();
      if (md.count("steps")) {
        const nlohmann::json steps = nlohmann::json::parse(md.at("steps"));
        for (const auto& [param, step] : steps.items()) steps_[param] = step.get<int64_t>();
      }
    } catch (const nlohmann::json::exception& e) {
      throw StageError(open_.back()->path() + ": metadata 'steps' is malformed: " + e.what());
    }
    for (const auto& name : open_.back()->names()) {
      // WHICH:LO:PARAM
      const size_t a = name.find(':'), b = a == std::string::npos ? a : name.find(':', a + 1);
      if (b == std::string::npos)
        throw StageError(open_.back()->path() + ": tensor " + name + " is not an AdamW piece");
      int64_t lo = 0;
      try {
        lo = std::stoll(name.substr(a + 1, b - a - 1));
      } catch (const std::exception&) {
        throw StageError(open_.back()->path() + ": tensor " + name + " has no element offset");
      }
      const int64_t n = open_.back()->numel(name);
      pieces_[name.substr(0, a) + ":" + name.substr(b + 1)].push_back({f, lo, n, name});
    }
  }
}

OptimizerStateReader::~OptimizerStateReader() = default;

int64_t OptimizerStateReader::step(const std::string& param) const {
  auto it = steps_.find(param);
  return it == steps_.end() ? 0 : it->second;
}

at::Tensor OptimizerStateReader::read(const std::string& param, const std::string& which,
                                      int64_t lo, int64_t n) {
  auto it = pieces_.find(which + ":" + param);
  if (it == pieces_.end()) return {};
  at::Tensor out = torch::empty({n}, torch::kFloat32);
  int64_t covered = 0;
  for (const auto& p : it->second) {
    const int64_t a = std::max(lo, p.lo), b = std::min(lo + n, p.lo + p.n);
    if (b <= a) continue;
    if (!verified_[p.file]) {
      verify_checkpoint_file(open_[p.file]->path(), files_[p.file].sha256);
      verified_[p.file] = true;
    }
    out.narrow(0, a - lo, b - a).copy_(open_[p.file]->read_flat(p.name, a - p.lo, b - a));
    covered += b - a;
  }
  if (covered != n) {
    throw StageError(dir_ + ": the AdamW state of " + param + " covers " + std::to_string(covered) +
                     " of elements [" + std::to_string(lo) + ", " + std::to_string(lo + n) +
                     ") (overlapping or missing pieces)");
  }
  return out;
}

}  // namespace upcycle::stages
