#include "stages/upcycle/surgery.h"

#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "core/strings.h"
#include "stages/arch/upcycle_config.h"
#include "stages/io/checkpoint.h"
#include "stages/model/transformer.h"

namespace upcycle::stages {
namespace {

using core::ends_with;

void check_same_shape(const ModelConfig& a, const ModelConfig& b, const std::string& a_dir,
                      const std::string& b_dir) {
  if (const std::string why = expert_mismatch(a, b); !why.empty()) {
    throw StageError("dense models differ in " + why + " (" + a_dir + " vs " + b_dir + ")");
  }
}

// Experts of one MoE FFN tensor from the dense [1, F, D] (w1, w3) or [1, D, F] (w2): G shards along
// F, the set repeated E times (expert j holds shard j mod G), scaled as `weight_scaling` says.
at::Tensor sparse_experts(const std::string& name, const at::Tensor& dense, const ModelConfig& moe,
                          const UpcycleSpec& spec) {
  const int64_t G = moe.ffn_granularity, N = moe.ffn_experts, Fe = moe.expert_hidden();
  const bool down = ends_with(name, ".w2");
  std::vector<at::Tensor> shards;
  for (int64_t j = 0; j < N; ++j) shards.push_back(dense.narrow(down ? 2 : 1, (j % G) * Fe, Fe));
  at::Tensor v = torch::cat(shards, 0);
  const double scale = moe_activation_scale(moe);
  if (spec.weight_scaling == "all") {
    v = v * std::cbrt(scale);  // SwiGLU: exact only where silu is linear (small pre-activations)
  } else if (spec.weight_scaling == "w2") {
    if (down) v = v * scale;
  } else if (spec.weight_scaling != "none") {
    throw StageError("weight_scaling must be all, w2 or none, got '" + spec.weight_scaling + "'");
  }
  return v;
}

}  // namespace

UpcycleResult upcycle_dense(const UpcycleSpec& spec) {
  if (spec.inputs.empty()) throw StageError("upcycle needs at least one dense checkpoint");
  if (spec.method == UpcycleMethod::kSparse && spec.inputs.size() != 1) {
    throw StageError("sparse upcycling takes exactly one dense checkpoint, got " +
                     std::to_string(spec.inputs.size()));
  }
  std::vector<TensorMap> dense;
  std::vector<CheckpointMeta> metas(spec.inputs.size());
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    dense.push_back(load_checkpoint_state(spec.inputs[i], &metas[i]));
    if (!metas[i].model.is_dense()) throw StageError(spec.inputs[i] + ": is not a dense model");
    check_same_shape(metas[0].model, metas[i].model, spec.inputs[0], spec.inputs[i]);
  }
  const int64_t n = static_cast<int64_t>(dense.size());
  if (spec.extra_seed_experts < 0 ||
      (spec.extra_seed_experts > 0 && spec.method != UpcycleMethod::kBtx)) {
    throw StageError("extra_seed_experts is for method btx only, and must be >= 0");
  }
  std::vector<double> w = spec.average_weights;
  if (w.empty()) w.assign(n, 1.0 / double(n));
  if (static_cast<int64_t>(w.size()) != n) {
    throw StageError("average_weights has " + std::to_string(w.size()) + " entries for " +
                     std::to_string(n) + " dense models");
  }

  UpcycleResult out;
  try {
    out.config =
        upcycled_config(spec.method, metas[0].model, spec.mixture, n + spec.extra_seed_experts);
  } catch (const core::FieldError& e) {
    throw StageError("upcycled model: " + std::string(e.what()));
  }
  torch::manual_seed(spec.seed);
  TransformerLm moe(out.config);  // fresh routers come from here
  out.state = state_of(moe);

  auto average = [&](const std::string& name) {
    auto acc = torch::zeros_like(dense[0].at(name));
    for (int64_t i = 0; i < n; ++i) acc += w[i] * dense[i].at(name);
    return acc;
  };
  // Expert i from dense model i, then extra copies of the first (the seed).
  auto stack = [&](const std::string& name) {
    std::vector<at::Tensor> parts;
    for (int64_t i = 0; i < n; ++i) parts.push_back(dense[i].at(name));
    for (int64_t i = 0; i < spec.extra_seed_experts; ++i) parts.push_back(dense[0].at(name));
    return torch::cat(parts, 0);
  };
  for (auto& [name, t] : out.state) {
    if (ends_with(name, ".router")) continue;
    const bool attn = name.find(".attn.") != std::string::npos;
    const bool ffn = name.find(".ffn.") != std::string::npos;
    const bool kv = ends_with(name, ".wk") || ends_with(name, ".wv") || ends_with(name, ".bk") ||
                    ends_with(name, ".bv");
    at::Tensor v;
    if (spec.method == UpcycleMethod::kSparse) {
      v = (ffn && t.size(0) > 1) ? sparse_experts(name, dense[0].at(name), out.config, spec)
                                 : dense[0].at(name);
    } else if (ffn) {
      v = t.size(0) > 1 ? stack(name) : average(name);
    } else if (attn && spec.method == UpcycleMethod::kBam) {
      if (kv && out.config.attn_kv == KvMode::kShared) {
        v = spec.shared_kv_init == "first" ? dense[0].at(name) : average(name);
      } else {
        v = stack(name);
      }
    } else {
      v = average(name);  // btx attention, embeddings, norms
    }
    t = v.clone();
  }
  if (spec.method == UpcycleMethod::kSparse && spec.virtual_groups) {
    // Megatron-LM _process_router_param: keep the first E rows, repeat each G times consecutively.
    const int64_t G = out.config.ffn_granularity;
    for (auto& [name, t] : out.state) {
      if (name.find(".ffn.router") == std::string::npos) continue;
      t = t.narrow(0, 0, t.size(0) / G).repeat_interleave(G, 0).contiguous();
    }
  }
  return out;
}

}  // namespace upcycle::stages
