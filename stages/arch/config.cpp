#include "stages/arch/config.h"

#include <limits>
#include <stdexcept>

#include "stages/arch/accounting.h"

namespace upcycle::stages {

const core::EnumNames<BlockType> kBlockNames = {{BlockType::kParallel, "parallel"},
                                                {BlockType::kSequential, "sequential"}};
const core::EnumNames<Recompute> kRecomputeNames = {
    {Recompute::kNone, "none"}, {Recompute::kBlock, "block"}, {Recompute::kSelective, "selective"}};
const core::EnumNames<Norm> kNormNames = {{Norm::kLayerNorm, "layernorm"},
                                          {Norm::kRmsNorm, "rmsnorm"}};
const core::EnumNames<AttnRouting> kAttnRoutingNames = {{AttnRouting::kSoft, "soft"},
                                                        {AttnRouting::kTopK, "top_k"}};
const core::EnumNames<KvMode> kKvModeNames = {{KvMode::kExpert, "expert"},
                                              {KvMode::kShared, "shared"}};
const core::EnumNames<FfnRouting> kFfnRoutingNames = {
    {FfnRouting::kSoftmaxThenTopK, "softmax_then_topk"},
    {FfnRouting::kTopKThenSoftmax, "topk_then_softmax"}};
const core::EnumNames<RopeScaling> kRopeScalingNames = {{RopeScaling::kNone, "none"},
                                                        {RopeScaling::kLlama3, "llama3"}};

namespace {

using M = ModelConfig;
constexpr int64_t kP20 = int64_t(1) << 20;
constexpr int64_t kP24 = int64_t(1) << 24;
constexpr double kInf = std::numeric_limits<double>::infinity();

// Upper bounds far above any real model keep a typo (layers=2000000000) from exhausting memory.
core::Fields<M> make_model_fields() {
  using core::kPlanned;
  core::Fields<M> f;
  f.integer("d_model", &M::d_model, {1, kP20}, "width")
      .integer("layers", &M::layers, {1, 4096}, "blocks")
      .integer("heads", &M::heads, {1, kP20},
               "attention heads; must divide `d_model`, head dim even (RoPE)")
      .integer("kv_heads", &M::kv_heads, {1, kP20},
               "K/V heads (GQA when fewer); must divide `heads`")
      .integer("ffn_hidden", &M::ffn_hidden, {1, kP24}, "SwiGLU hidden size of one dense FFN")
      .integer("vocab", &M::vocab, {1, int64_t(1) << 32},
               "vocabulary; in a recipe, `data.tokenizer.vocab` (it must equal it when given)")
      .integer("seq_len", &M::seq_len, {1, kP24}, "context length")
      .choice("block", &M::block, kBlockNames,
              "`parallel`: one norm feeds attention and FFN (BAM, PaLM); `sequential`: Llama")
      .choice("norm", &M::norm, kNormNames,
              "`layernorm` (weight only, as BAM Table 9 counts) or `rmsnorm`")
      .boolean("tied_embeddings", &M::tied_embeddings, "share input and output embeddings")
      .boolean("qkv_bias", &M::qkv_bias,
               "biases on the attention's q, k and v projections (Qwen2); none on its output",
               core::kOmitDefault)
      .number("rope_theta", &M::rope_theta, {0, kInf, true}, "RoPE base")
      .choice("rope_scaling", &M::rope_scaling, kRopeScalingNames,
              "`none`, or `llama3` (Llama 3.1's frequency scaling; the four keys below)",
              core::kOmitDefault)
      .number("rope_factor", &M::rope_factor, {1, kInf}, "llama3: context extension factor",
              core::kOmitDefault)
      .number("rope_low_freq_factor", &M::rope_low_freq_factor, {0, kInf, true},
              "llama3: wavelengths above original_context / this are divided by the factor",
              core::kOmitDefault)
      .number("rope_high_freq_factor", &M::rope_high_freq_factor, {0, kInf, true},
              "llama3: wavelengths below original_context / this are kept", core::kOmitDefault)
      .integer("rope_original_context", &M::rope_original_context, {1, kP24},
               "llama3: the context the RoPE frequencies were trained at", core::kOmitDefault)
      .number("norm_eps", &M::norm_eps, {0, 1, true, true}, "norm epsilon")
      .number("init_std", &M::init_std, {0, 10, true, true},
              "init std (output projections scaled by 1/sqrt(2·layers))")
      .integer("attn_experts", &M::attn_experts, {1, 4096}, "attention experts (BAM); 1 = dense",
               kPlanned)
      .choice("attn_routing", &M::attn_routing, kAttnRoutingNames, "attention expert routing",
              kPlanned)
      .integer("attn_top_k", &M::attn_top_k, {1, 4096}, "attention experts per token (top_k)",
               kPlanned)
      .choice("attn_kv", &M::attn_kv, kKvModeNames, "own or shared K/V projections", kPlanned)
      .integer("ffn_experts", &M::ffn_experts, {1, 65536}, "FFN experts; 1 = dense", kPlanned)
      .integer("ffn_top_k", &M::ffn_top_k, {1, 65536}, "FFN experts per token", kPlanned)
      .choice("ffn_routing", &M::ffn_routing, kFfnRoutingNames, "FFN router", kPlanned)
      .boolean("ffn_renormalize", &M::ffn_renormalize, "renormalise the top-k probabilities",
               kPlanned)
      .integer("moe_every", &M::moe_every, {1, 4096}, "MoE FFN in every n-th layer", kPlanned)
      .integer("ffn_granularity", &M::ffn_granularity, {1, kP24}, "expert hidden = ffn_hidden / G",
               kPlanned)
      .number("router_init_std", &M::router_init_std, {0, kInf, true}, "router init std", kPlanned)
      .number("lb_coef", &M::lb_coef, {0, kInf}, "load-balancing loss coefficient", kPlanned)
      .number("z_coef", &M::z_coef, {0, kInf}, "router z-loss coefficient", kPlanned);
  return f;
}

void require(bool ok, const std::string& key, const std::string& reason) {
  if (!ok) throw core::FieldError(key, reason);
}

}  // namespace

const core::Fields<ModelConfig>& model_fields() {
  static const core::Fields<ModelConfig> kFields = make_model_fields();
  return kFields;
}

void ModelConfig::validate() const {
  model_fields().check(*this);
  require(d_model % heads == 0, "heads", "must divide d_model (" + std::to_string(d_model) + ")");
  require(head_dim() % 2 == 0, "heads", "head dimension d_model/heads must be even for RoPE");
  require(heads % kv_heads == 0, "kv_heads", "must divide heads (" + std::to_string(heads) + ")");
  require(attn_top_k <= attn_experts, "attn_top_k",
          "must be in [1, attn_experts=" + std::to_string(attn_experts) + "]");
  require(ffn_top_k <= ffn_experts, "ffn_top_k",
          "must be in [1, ffn_experts=" + std::to_string(ffn_experts) + "]");
  require(ffn_hidden % ffn_granularity == 0, "ffn_granularity", "must divide ffn_hidden");
  require(rope_scaling != RopeScaling::kLlama3 || rope_high_freq_factor > rope_low_freq_factor,
          "rope_high_freq_factor", "must be greater than rope_low_freq_factor");
  // Sizes are checked before anything allocates them (a bad_alloc, or a count that wraps,
  // otherwise).
  int64_t params = 0;
  try {
    params = count_params(*this).total;
    count_flops(*this);
  } catch (const std::overflow_error& e) {
    require(
        false, "size",
        std::string(e.what()) + ": check d_model, layers, ffn_hidden, vocab and the expert counts");
  }
  require(params <= kMaxModelParams, "size",
          "the model has " + std::to_string(params) +
              " parameters, more than 2^42 (16 TiB in float32): check d_model, "
              "layers, ffn_hidden, vocab and the expert counts");
}

nlohmann::json to_json(const ModelConfig& c) { return model_fields().to_json(c); }

ModelConfig model_config_from_json(const nlohmann::json& j) {
  ModelConfig c;
  model_fields().read(core::JsonSource(j), c);
  return c;
}

}  // namespace upcycle::stages
