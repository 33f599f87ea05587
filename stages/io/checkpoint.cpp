#include "stages/io/checkpoint.h"

#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/output_dir.h"
#include "core/sha256.h"

namespace upcycle::stages {

namespace {

// A checkpoint file is read whole and hashed: the paper models' weights run to tens of GB.
constexpr int64_t kMaxCheckpointFileBytes = int64_t(1) << 40;

// A save interrupted between its two renames leaves DIR.prev and no DIR: put the old one back.
void recover_interrupted_swap(const std::string& dir) {
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec) && std::filesystem::exists(dir + ".prev", ec)) {
    std::filesystem::rename(dir + ".prev", dir, ec);
  }
}

nlohmann::json shard_json(const ShardFile& f) {
  return {{"file", f.file}, {"sha256", f.sha256}, {"bytes", f.bytes}};
}

// A shard listed in a manifest: a plain file name in the checkpoint directory.
ShardFile shard_from_json(const nlohmann::json& j, const std::string& cfg_path) {
  ShardFile f{j.at("file").get<std::string>(), j.at("sha256").get<std::string>(),
              j.at("bytes").get<uint64_t>()};
  if (!is_plain_file_name(f.file) || f.file[0] == '.')  // nor a hidden file (temps are)
    throw StageError(cfg_path + ": shard '" + f.file + "' is not a plain file name");
  return f;
}

}  // namespace

// The model holds each FFN's gate and up projections as one parameter, w13 = [w1; w3] along dim 1
// (moe_ffn.h); checkpoints and every tensor map hold them as w1 and w3. Each parameter as the
// tensors of a map: (name, a view of the parameter's data).
std::vector<std::pair<std::string, at::Tensor>> state_views(TransformerLm& model) {
  static const std::string kFused = ".w13";
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : model->named_parameters()) {
    const std::string& name = p.key();
    at::Tensor data = p.value().detach();
    if (name.size() > kFused.size() &&
        name.compare(name.size() - kFused.size(), kFused.size(), kFused) == 0) {
      const std::string stem = name.substr(0, name.size() - 2);  // "...w"
      const int64_t half = data.size(1) / 2;
      out.emplace_back(stem + "1", data.narrow(1, 0, half));
      out.emplace_back(stem + "3", data.narrow(1, half, half));
    } else {
      out.emplace_back(name, data);
    }
  }
  return out;
}

TensorMap state_of(TransformerLm& model) {
  TensorMap out;
  for (const auto& [name, t] : state_views(model)) out[name] = t.contiguous();
  return out;
}

void load_state_into(TransformerLm& model, const TensorMap& state, const std::string& origin) {
  torch::NoGradGuard no_grad;
  const auto views = state_views(model);
  std::set<std::string> names;
  for (const auto& v : views) names.insert(v.first);
  for (const auto& [name, t] : state) {
    if (!names.count(name)) {
      throw StageError(origin + ": tensor " + name + " is not a parameter of the configured model");
    }
  }
  for (const auto& [name, view] : views) {
    auto it = state.find(name);
    if (it == state.end()) throw StageError(origin + ": missing tensor " + name);
    if (it->second.sizes() != view.sizes()) {
      throw StageError(origin + ": tensor " + name + " has shape " + c10::str(it->second.sizes()) +
                       ", the model expects " + c10::str(view.sizes()));
    }
    at::Tensor(view).copy_(it->second);
  }
}

std::string save_checkpoint(const std::string& dir, const TensorMap& state, CheckpointMeta meta,
                            const std::map<std::string, std::string>& extra_files) {
  const std::string tmp = begin_checkpoint(dir);
  try {
    std::vector<std::pair<std::string, at::Tensor>> tensors(state.begin(), state.end());
    meta.weights = {write_weights_file(tmp, kWeightsFile, tensors, meta.model)};
    meta.files.clear();
    for (const auto& [name, content] : extra_files) {
      core::write_file_atomic(tmp + "/" + name, content);
      meta.files[name] = core::sha256_hex(content);
    }
    return commit_checkpoint(dir, tmp, meta);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(tmp, ec);  // a full disk must not leave a partial copy behind
    throw;
  }
}

std::string save_checkpoint(const std::string& dir, TransformerLm& model,
                            const CheckpointMeta& meta,
                            const std::map<std::string, std::string>& extra_files) {
  CheckpointMeta m = meta;
  m.model = model->config;
  return save_checkpoint(dir, state_of(model), m, extra_files);
}

void verify_checkpoint_file(const std::string& path, const std::string& sha256) {
  std::string actual;
  try {
    actual = core::sha256_file(path);
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  if (actual != sha256) {
    throw StageError(path + ": sha256 " + actual + " does not match " + sha256 + " recorded in " +
                     kCheckpointConfigFile + " (corrupt or partial file)");
  }
}

std::string checkpoint_temp(const std::string& dir, int64_t pid) {
  return dir + ".tmp." + std::to_string(pid);
}

std::string begin_checkpoint(const std::string& dir) {
  recover_interrupted_swap(dir);
  core::sweep_stale_temps(dir);  // of attempts that died while saving
  const std::string tmp = checkpoint_temp(dir, ::getpid());
  std::error_code ec;
  std::filesystem::remove_all(tmp, ec);
  core::make_dirs(tmp);
  return tmp;
}

ShardFile write_weights_file(const std::string& tmp, const std::string& file,
                             const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                             const ModelConfig& model) {
  const WrittenFile w =
      write_safetensors_streamed(tmp + "/" + file, tensors,
                                 {{"format", "pt"},
                                  {"producer", "upcycle"},
                                  {kModelConfigShaKey, model_config_sha256(model)}});
  return {file, w.sha256, w.bytes};
}

std::string commit_checkpoint(const std::string& dir, const std::string& tmp, CheckpointMeta meta) {
  namespace fs = std::filesystem;
  nlohmann::json weights = nlohmann::json::array(), optimizer = nlohmann::json::array();
  for (const auto& w : meta.weights) weights.push_back(shard_json(w));
  for (const auto& o : meta.optimizer) optimizer.push_back(shard_json(o));
  nlohmann::json cfg = {{"format_version", kCheckpointFormatVersion},
                        {"model", to_json(meta.model)},
                        {"step", meta.step},
                        {"tokens", meta.tokens},
                        {"extra", meta.extra},
                        {"weights", weights},
                        {"files", meta.files}};
  if (!meta.optimizer.empty()) cfg["optimizer"] = optimizer;
  try {
    core::write_file_atomic(tmp + "/" + kCheckpointConfigFile, cfg.dump(2) + "\n");
    core::fsync_directory(tmp);
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  std::error_code ec;
  fs::remove_all(dir + ".prev", ec);
  if (fs::exists(dir)) fs::rename(dir, dir + ".prev");
  fs::rename(tmp, dir);
  fs::remove_all(dir + ".prev", ec);
  const std::string parent = fs::path(dir).parent_path().string();
  core::fsync_directory(parent.empty() ? "." : parent);
  return weights_digest(meta);
}

std::string weights_digest(const CheckpointMeta& meta) {
  if (meta.weights.size() == 1) return meta.weights[0].sha256;
  std::string list;
  for (const auto& w : meta.weights) list += w.file + " " + w.sha256 + "\n";
  return core::sha256_hex(list);
}

std::string model_config_sha256(const ModelConfig& m) {
  return core::sha256_hex(to_json(m).dump());
}

bool checkpoint_exists(const std::string& dir) {
  return core::file_exists(dir + "/" + kCheckpointConfigFile) ||
         core::file_exists(dir + ".prev/" + kCheckpointConfigFile);
}

std::string read_checkpoint_file(const std::string& dir, const std::string& name) {
  CheckpointMeta meta = read_checkpoint_meta(dir);
  auto it = meta.files.find(name);
  if (it == meta.files.end()) throw StageError(dir + ": the checkpoint has no " + name);
  std::string path = dir + "/" + name, content;
  try {
    content = core::read_file(path, kMaxCheckpointFileBytes);
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  if (core::sha256_hex(content) != it->second) {
    throw StageError(path +
                     ": sha256 does not match the checkpoint config (corrupt or partial file)");
  }
  return content;
}

CheckpointMeta read_checkpoint_meta(const std::string& dir) {
  recover_interrupted_swap(dir);
  std::string cfg_path = dir + "/" + kCheckpointConfigFile;
  if (!core::file_exists(cfg_path)) {
    throw StageError(dir + ": not a checkpoint (no " + kCheckpointConfigFile +
                     "; an interrupted save leaves none)");
  }
  CheckpointMeta meta;
  try {
    auto cfg = core::read_json_file(cfg_path);
    int version = cfg.at("format_version").get<int>();
    if (version < 1 || version > kCheckpointFormatVersion) {
      throw StageError(cfg_path + ": checkpoint format version " + std::to_string(version) +
                       " is not supported (expected 1 to " +
                       std::to_string(kCheckpointFormatVersion) + ")");
    }
    meta.model = model_config_from_json(cfg.at("model"));
    meta.step = cfg.at("step").get<int64_t>();
    meta.tokens = cfg.at("tokens").get<int64_t>();
    meta.extra = cfg.at("extra");
    if (version == 1) {  // one weights file
      meta.weights = {{kWeightsFile, cfg.at("weights_sha256").get<std::string>(), 0}};
    } else {
      for (const auto& w : cfg.at("weights")) meta.weights.push_back(shard_from_json(w, cfg_path));
      if (meta.weights.empty()) throw StageError(cfg_path + ": lists no weights file");
    }
    if (cfg.contains("optimizer")) {
      for (const auto& o : cfg.at("optimizer"))
        meta.optimizer.push_back(shard_from_json(o, cfg_path));
    }
    if (cfg.contains("files"))
      meta.files = cfg.at("files").get<std::map<std::string, std::string>>();
  } catch (const nlohmann::json::exception& e) {
    throw StageError(cfg_path + ": malformed checkpoint config: " + e.what());
  } catch (const core::FieldError& e) {
    throw StageError(cfg_path + ": model." + e.what());
  } catch (const Error& e) {
    throw StageError(e.what());
  }
  return meta;
}

TensorMap load_checkpoint_state(const std::string& dir, CheckpointMeta* meta_out) {
  CheckpointMeta meta = read_checkpoint_meta(dir);
  TensorMap state;
  for (const auto& w : meta.weights) {
    const std::string path = dir + "/" + w.file;
    verify_checkpoint_file(path, w.sha256);
    const SafetensorsFile file(path);
    auto saved = file.metadata().find(kModelConfigShaKey);  // absent in early checkpoints
    if (saved != file.metadata().end() && saved->second != model_config_sha256(meta.model)) {
      throw StageError(dir + "/" + kCheckpointConfigFile +
                       ": its model config is not the one the weights were saved " +
                       "with (edited after saving?)");
    }
    for (const auto& name : file.names()) {
      if (state.count(name)) throw StageError(path + ": tensor " + name + " is in two shards");
      // bf16 weights (a run under bf16 with ZeRO) are read as fp32, as every consumer expects.
      const at::Tensor t = file.read(name);
      state[name] = t.scalar_type() == torch::kBFloat16 ? t.to(torch::kFloat32) : t;
    }
  }
  if (meta_out) *meta_out = meta;
  return state;
}

TransformerLm load_model(const std::string& dir, CheckpointMeta* meta_out) {
  CheckpointMeta meta;
  TensorMap state = load_checkpoint_state(dir, &meta);
  TransformerLm model(meta.model);
  load_state_into(model, state, dir);
  if (meta_out) *meta_out = meta;
  return model;
}

}  // namespace upcycle::stages
