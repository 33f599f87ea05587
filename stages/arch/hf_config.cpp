#include "stages/arch/hf_config.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/job_files.h"
#include "core/json_integer.h"
#include "core/sha256.h"

namespace upcycle::stages {
namespace {

// Typed reads from a config.json, every error naming the file and the key.
class ConfigKeys {
 public:
  ConfigKeys(const nlohmann::json& j, std::string origin) : j_(j), origin_(std::move(origin)) {}

  StageError error(const std::string& key, const std::string& why) const {
    return StageError(origin_ + ": key '" + key + "': " + why);
  }
  bool has(const std::string& key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  template <typename T>
  T get(const std::string& key, T fallback) const {
    if (!has(key)) return fallback;
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (std::string why = core::integer_problem<T>(j_.at(key)); !why.empty())
        throw error(key, why);
    }
    try {
      return j_.at(key).get<T>();
    } catch (const nlohmann::json::exception&) {
      throw error(key, "has the wrong type (" + j_.at(key).dump() + ")");
    }
  }
  template <typename T>
  T need(const std::string& key) const {
    if (!has(key)) throw error(key, "missing");
    return get<T>(key, T{});
  }
  /// The key is absent, null or equal to `ok`; else the option has no equivalent in our model.
  template <typename T>
  void require(const std::string& key, T ok, const std::string& why) const {
    if (has(key) && get<T>(key, ok) != ok) throw error(key, "is " + j_.at(key).dump() + ": " + why);
  }
  const nlohmann::json& json() const { return j_; }

 private:
  const nlohmann::json& j_;
  std::string origin_;
};

// rope_theta and the RoPE scaling, from `rope_parameters` (transformers 5) or `rope_scaling` and
// `rope_theta` (earlier files); rope_type wins over type where both are given.
void read_rope(const ConfigKeys& k, ModelConfig& m) {
  m.rope_theta = k.get<double>("rope_theta", 10000.0);
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    if (!k.has(key)) continue;
    const ConfigKeys r(k.json().at(key), "");
    if (!k.json().at(key).is_object()) throw k.error(key, "expected a mapping");
    auto number = [&](const char* field) {
      if (!r.has(field)) throw k.error(key, std::string(field) + ": missing");
      if (!r.json().at(field).is_number())
        throw k.error(key, std::string(field) + ": expected a number");
      return r.json().at(field).get<double>();
    };
    std::string type = "default";
    for (const char* t : {"type", "rope_type"}) {
      if (!r.has(t)) continue;
      if (!r.json().at(t).is_string()) throw k.error(key, std::string(t) + ": expected a string");
      type = r.json().at(t).get<std::string>();
    }
    if (r.has("rope_theta")) m.rope_theta = number("rope_theta");
    if (r.has("partial_rotary_factor") && number("partial_rotary_factor") != 1.0)
      throw k.error(key, "partial_rotary_factor: upcycle's RoPE rotates the whole head");
    if (type == "llama3") {
      m.rope_scaling = RopeScaling::kLlama3;
      m.rope_factor = number("factor");
      m.rope_low_freq_factor = number("low_freq_factor");
      m.rope_high_freq_factor = number("high_freq_factor");
      const double ctx = number("original_max_position_embeddings");
      if (ctx < 1 || ctx > double(int64_t(1) << 24) || ctx != double(int64_t(ctx)))
        throw k.error(key, "original_max_position_embeddings: expected an integer in [1, 2^24]");
      m.rope_original_context = int64_t(ctx);
    } else if (type != "default") {
      throw k.error(
          key, "RoPE scaling '" + type + "' is not supported (upcycle's RoPE: default, or llama3)");
    }
  }
}

// What every supported architecture shares: embeddings, attention, a SwiGLU FFN.
ModelConfig common_config(const ConfigKeys& k, std::optional<int64_t> seq_len) {
  ModelConfig m;
  m.d_model = k.need<int64_t>("hidden_size");
  m.layers = k.need<int64_t>("num_hidden_layers");
  m.heads = k.need<int64_t>("num_attention_heads");
  m.kv_heads = k.get<int64_t>("num_key_value_heads", m.heads);
  m.ffn_hidden = k.need<int64_t>("intermediate_size");
  m.vocab = k.need<int64_t>("vocab_size");
  read_rope(k, m);
  m.init_std = k.get<double>("initializer_range", m.init_std);
  if (m.heads > 0 && k.has("head_dim") && k.get<int64_t>("head_dim", 0) * m.heads != m.d_model) {
    throw k.error("head_dim", "must be hidden_size / num_attention_heads in upcycle's attention");
  }
  const std::string act =
      k.get<std::string>("hidden_act", k.get<std::string>("hidden_activation", "silu"));
  if (act != "silu")
    throw k.error("hidden_act", "'" + act + "' is not supported (upcycle's FFN is SwiGLU)");
  k.require("attention_bias", false, "upcycle's attention has no biases");
  k.require("mlp_bias", false, "upcycle's FFN has no biases");
  m.seq_len = seq_len.value_or(k.get<int64_t>("max_position_embeddings", 2048));
  // Qwen2 keeps a window in its config that use_sliding_window: false switches off.
  if (k.get<bool>("use_sliding_window", true) && k.has("sliding_window") &&
      k.get<int64_t>("sliding_window", 0) < m.seq_len) {
    throw k.error("sliding_window", "sliding-window attention shorter than the context (" +
                                        std::to_string(m.seq_len) + ") is not supported");
  }
  return m;
}

nlohmann::json hf_rope_parameters(const ModelConfig& m) {
  nlohmann::json r = {{"rope_type", "default"}, {"rope_theta", m.rope_theta}};
  if (m.rope_scaling == RopeScaling::kLlama3) {
    r.update({{"rope_type", "llama3"},
              {"factor", m.rope_factor},
              {"low_freq_factor", m.rope_low_freq_factor},
              {"high_freq_factor", m.rope_high_freq_factor},
              {"original_max_position_embeddings", m.rope_original_context}});
  }
  return r;
}

// The same for readers of transformers 4 (rope_scaling without rope_theta; null when unscaled).
nlohmann::json hf_rope_scaling(const ModelConfig& m) {
  if (m.rope_scaling == RopeScaling::kNone) return nullptr;
  nlohmann::json r = hf_rope_parameters(m);
  r.erase("rope_theta");
  return r;
}

}  // namespace

namespace {

// Every format and its name, once; "bam" names native too (what the format is for).
const std::vector<std::pair<HfFormat, const char*>> kHfFormats = {
    {HfFormat::kLlama, "llama"},   {HfFormat::kMistral, "mistral"}, {HfFormat::kPhi3, "phi3"},
    {HfFormat::kQwen2, "qwen2"},   {HfFormat::kCohere, "cohere"},   {HfFormat::kMixtral, "mixtral"},
    {HfFormat::kNative, "native"}, {HfFormat::kNative, "bam"}};

}  // namespace

const char* hf_format_name(HfFormat f) {
  for (const auto& [format, name] : kHfFormats) {
    if (format == f) return name;  // the first name: native's key stays "native"
  }
  return "?";
}

std::vector<std::string> hf_format_names() {
  std::vector<std::string> out;
  for (const auto& [format, name] : kHfFormats) out.emplace_back(name);
  return out;
}

HfFormat hf_format_from(const std::string& name) {
  std::string known;
  for (const auto& [format, n] : kHfFormats) {
    if (name == n) return format;
    known += (known.empty() ? "" : ", ") + std::string(n);
  }
  throw std::invalid_argument("unknown format '" + name + "' (" + known + ")");
}

HfModel hf_model_from_config(const nlohmann::json& config, const std::string& origin,
                             std::optional<int64_t> seq_len) {
  if (!config.is_object()) throw StageError(origin + ": not a JSON object");
  ConfigKeys k(config, origin);
  const std::string type = k.get<std::string>("model_type", "");
  HfModel out;
  if (type == "upcycle") {
    if (k.get<int>("upcycle_format_version", 0) != kNativeFormatVersion) {
      throw k.error("upcycle_format_version", "expected " + std::to_string(kNativeFormatVersion));
    }
    out.format = HfFormat::kNative;
    try {
      out.model = model_config_from_json(k.need<nlohmann::json>("upcycle_model"));
    } catch (const std::exception& e) {
      throw k.error("upcycle_model", e.what());
    }
    if (seq_len) out.model.seq_len = *seq_len;
  } else if (type == "llama" || type == "mistral" || type == "mixtral" || type == "phi3" ||
             type == "qwen2") {
    out.format = hf_format_from(type);
    if (type == "phi3")
      k.require("partial_rotary_factor", 1.0, "upcycle's RoPE rotates the whole head");
    out.model = common_config(k, seq_len);
    out.model.qkv_bias = type == "qwen2";  // Qwen2's q/k/v projections always have biases
    out.model.block = BlockType::kSequential;
    out.model.norm = Norm::kRmsNorm;
    out.model.norm_eps = k.get<double>("rms_norm_eps", 1e-6);
    out.model.tied_embeddings = k.get<bool>("tie_word_embeddings", false);
    if (type == "mixtral") {
      out.model.ffn_experts = k.need<int64_t>("num_local_experts");
      out.model.ffn_top_k = k.get<int64_t>("num_experts_per_tok", 2);
      out.model.ffn_routing = FfnRouting::kSoftmaxThenTopK;
      out.model.ffn_renormalize = true;
    }
  } else if (type == "cohere") {
    out.format = HfFormat::kCohere;
    out.model = common_config(k, seq_len);
    out.model.block = BlockType::kParallel;
    out.model.norm = Norm::kLayerNorm;
    out.model.norm_eps = k.get<double>("layer_norm_eps", 1e-5);
    k.require("use_qk_norm", false, "QK LayerNorm is not supported");
    out.model.tied_embeddings = k.get<bool>("tie_word_embeddings", true);
    out.logit_scale = k.get<double>("logit_scale", 0.0625);
  } else {
    throw k.error(
        "model_type",
        "'" + type + "' is not supported (llama, mistral, phi3, qwen2, cohere, mixtral, upcycle)");
  }
  out.hf_tied_embeddings = out.model.tied_embeddings;
  if (out.logit_scale != 1.0) {
    out.model.tied_embeddings = false;
    out.notes.push_back(
        "logit_scale " + std::to_string(out.logit_scale) +
        " folded into an untied output head (head = scale x the checkpoint's head)");
  }
  try {
    out.model.validate();
  } catch (const core::FieldError& e) {
    throw StageError(origin + ": the model it describes is not valid: " + e.what());
  }
  return out;
}

HfModel read_hf_model(const std::string& dir, std::optional<int64_t> seq_len) {
  const std::string path = dir + "/config.json";
  nlohmann::json j;
  try {
    j = core::read_json_file(path);
  } catch (const Error& e) {
    throw StageError(std::string(e.what()) +
                     " (a Hugging Face checkpoint directory has a config.json)");
  }
  return hf_model_from_config(j, path, seq_len);
}

std::string hf_checkpoint_fingerprint(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<std::string> parts;
  for (const char* f : {"config.json", "tokenizer.model", "model.safetensors.index.json"}) {
    const std::string path = dir + "/" + f;
    if (fs::exists(path, ec)) parts.push_back(std::string(f) + ":" + core::sha256_file(path));
  }
  // A tokenizer.json counts where it is the tokenizer (no tokenizer.model): other keys stay as
  // they were.
  if (!fs::exists(dir + "/tokenizer.model", ec) && fs::exists(dir + "/tokenizer.json", ec))
    parts.push_back("tokenizer.json:" + core::sha256_file(dir + "/tokenizer.json"));
  std::vector<fs::path> weights;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() == ".safetensors") weights.push_back(e.path());
  }
  if (ec) throw StageError(dir + ": cannot list: " + ec.message());
  std::sort(weights.begin(), weights.end());
  for (const auto& w : weights) {
    std::ifstream in(w, std::ios::binary);
    unsigned char len[8] = {0};
    in.read(reinterpret_cast<char*>(len), 8);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= uint64_t(len[i]) << (8 * i);
    const uint64_t size = fs::file_size(w, ec);
    // A hostile length is capped: the file itself is checked when the import reads it.
    std::string header(
        static_cast<size_t>(std::min<uint64_t>({n, size > 8 ? size - 8 : 0, uint64_t(100) << 20})),
        '\0');
    in.read(header.data(), static_cast<std::streamsize>(header.size()));
    parts.push_back(w.filename().string() + ":" + std::to_string(size) + ":" +
                    core::sha256_hex(header));
  }
  std::string all;
  for (const auto& p : parts) all += p + "\n";
  return core::sha256_hex(all);
}

std::string hf_export_refusal(const ModelConfig& m, HfFormat f) {
  if (f == HfFormat::kNative) return "";
  if (m.attn_experts > 1) {
    return "its attention has " + std::to_string(m.attn_experts) +
           " experts (BAM), which no Hugging Face class computes; export it as native";
  }
  if (m.qkv_bias != (f == HfFormat::kQwen2)) {
    return m.qkv_bias ? std::string("its attention has q/k/v biases, which ") + hf_format_name(f) +
                            " has not; export it as qwen2"
                      : "qwen2 has q/k/v biases and this model has none; export it as llama";
  }
  if (f == HfFormat::kCohere) {
    if (m.block != BlockType::kParallel || m.norm != Norm::kLayerNorm)
      return std::string("cohere is parallel blocks with LayerNorm; this model is ") +
             core::enum_name(kBlockNames, m.block) + " with " + core::enum_name(kNormNames, m.norm);
    if (m.ffn_experts > 1)
      return "cohere has a dense FFN; this model has " + std::to_string(m.ffn_experts) +
             " FFN experts";
    return "";
  }
  if (m.block != BlockType::kSequential || m.norm != Norm::kRmsNorm) {
    return std::string(hf_format_name(f)) + " is sequential blocks with RMSNorm; this model is " +
           core::enum_name(kBlockNames, m.block) + " with " + core::enum_name(kNormNames, m.norm);
  }
  if (f != HfFormat::kMixtral) {  // llama, mistral, phi3
    return m.ffn_experts > 1
               ? "its FFN has " + std::to_string(m.ffn_experts) + " experts; export it as mixtral"
               : "";
  }
  if (m.ffn_experts == 1)
    return "mixtral needs FFN experts; this model is dense (export it as llama)";
  if (m.moe_every != 1)
    return "Mixtral has experts in every layer; this model has them every " +
           std::to_string(m.moe_every);
  if (m.ffn_granularity != 1)
    return "Mixtral has no fine-grained experts (granularity " + std::to_string(m.ffn_granularity) +
           ")";
  if (m.ffn_routing == FfnRouting::kSoftmaxThenTopK && !m.ffn_renormalize) {
    return "its router takes softmax then top-k without renormalising, and Mixtral renormalises "
           "the top-k "
           "probabilities, so the exported model would compute something else";
  }
  return "";
}

std::optional<HfFormat> hf_format_for(const ModelConfig& m) {
  for (HfFormat f : {HfFormat::kLlama, HfFormat::kCohere, HfFormat::kMixtral, HfFormat::kQwen2}) {
    if (hf_export_refusal(m, f).empty()) return f;
  }
  return std::nullopt;
}

std::string hf_no_format_reason(const ModelConfig& m) {
  if (hf_format_for(m)) return "";
  const HfFormat closest = m.ffn_experts > 1                 ? HfFormat::kMixtral
                           : m.block == BlockType::kParallel ? HfFormat::kCohere
                           : m.qkv_bias                      ? HfFormat::kQwen2
                                                             : HfFormat::kLlama;
  return hf_export_refusal(m, closest);
}

nlohmann::json hf_config_for(const ModelConfig& m, HfFormat f, const std::string& dtype,
                             const HfTokenIds& ids) {
  const std::string why = hf_export_refusal(m, f);
  if (!why.empty())
    throw StageError(std::string("cannot export as ") + hf_format_name(f) + ": " + why);
  auto id = [](int64_t v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json c = {{"torch_dtype", dtype},
                      {"dtype", dtype},
                      {"bos_token_id", id(ids.bos)},
                      {"eos_token_id", id(ids.eos)},
                      {"pad_token_id", id(ids.pad)},
                      {"vocab_size", m.vocab},
                      {"max_position_embeddings", m.seq_len},
                      {"tie_word_embeddings", m.tied_embeddings}};
  if (f == HfFormat::kNative) {
    c.update({{"architectures", {"BamForCausalLM"}},
              {"auto_map",  // the remote code export writes beside it (stages/io/hf_bam/)
               {{"AutoConfig", "configuration_bam.BamConfig"},
                {"AutoModelForCausalLM", "modeling_bam.BamForCausalLM"}}},
              {"tie_word_embeddings", false},  // modeling_bam.py ties the head itself
              {"model_type", "upcycle"},
              {"upcycle_format_version", kNativeFormatVersion},
              {"upcycle_model", to_json(m)}});
    return c;
  }
  c.update({{"hidden_size", m.d_model},
            {"intermediate_size", m.ffn_hidden},
            {"num_hidden_layers", m.layers},
            {"num_attention_heads", m.heads},
            {"num_key_value_heads", m.kv_heads},
            {"head_dim", m.head_dim()},
            {"hidden_act", "silu"},
            {"attention_bias", false},
            {"attention_dropout", 0.0},
            {"rope_theta", m.rope_theta},
            {"rope_scaling", hf_rope_scaling(m)},
            {"rope_parameters", hf_rope_parameters(m)},
            {"initializer_range", m.init_std},
            {"use_cache", true}});
  if (f == HfFormat::kCohere) {
    c.update({{"architectures", {"CohereForCausalLM"}},
              {"model_type", "cohere"},
              {"layer_norm_eps", m.norm_eps},
              {"logit_scale", 1.0},
              {"use_qk_norm", false}});
    return c;
  }
  c.update({{"rms_norm_eps", m.norm_eps}, {"mlp_bias", false}});
  if (f == HfFormat::kLlama) {
    c.update(
        {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"pretraining_tp", 1}});
  } else if (f == HfFormat::kMistral) {
    c.update({{"architectures", {"MistralForCausalLM"}},
              {"model_type", "mistral"},
              {"sliding_window", nullptr}});
  } else if (f == HfFormat::kQwen2) {
    c.erase("attention_bias");  // Qwen2's q/k/v biases are not an option of its config
    c.update({{"architectures", {"Qwen2ForCausalLM"}},
              {"model_type", "qwen2"},
              {"use_sliding_window", false},
              {"sliding_window", nullptr},
              {"max_window_layers", m.layers}});
  } else if (f == HfFormat::kPhi3) {
    c.update({{"architectures", {"Phi3ForCausalLM"}},
              {"model_type", "phi3"},
              {"partial_rotary_factor", 1.0},
              {"sliding_window", nullptr},
              {"resid_pdrop", 0.0},
              {"embd_pdrop", 0.0}});
  } else {
    c.update({{"architectures", {"MixtralForCausalLM"}},
              {"model_type", "mixtral"},
              {"num_local_experts", m.ffn_experts},
              {"num_experts_per_tok", m.ffn_top_k},
              {"sliding_window", nullptr},
              {"router_aux_loss_coef", m.lb_coef},
              {"output_router_logits", false}});
  }
  return c;
}

}  // namespace upcycle::stages
